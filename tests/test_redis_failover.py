"""Redis Sentinel: the fleet on a primary, a replica and three sentinels (loopback processes,
no Docker), its primary SIGKILLed under a stream of submissions. After the failover the
fleet carries on: every accepted job ends, exactly once, and is charged at most once; the
books reconcile. The test prints the failover pause it measured.

With FLEET_REDIS_MIN_REPLICAS=1 (the Sentinel default) a job is accepted (202) only once a
replica holds it, so the promoted replica has every accepted job. The promoted replica has
no replica of its own until the killed primary comes back, and until then the gateway
answers 503: the test brings the killed node back as a replica of the new master as soon as
the sentinels have promoted, as a supervisor (or an operator) would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from billing.ledger import Ledger
from imagefleet import procs
from imagefleet.redis_conn import (
    NotReplicated,
    connect,
    is_sentinel,
    kombu_broker,
    parse_sentinel_url,
    wait_for_replicas,
)
from jobs.store import JobStore
from tests import images
from tests.fleet_harness import Fleet, start_fleet

MASTER = "fleetmaster"
JOBS = 150
KILL_AFTER = 40  # accepted jobs before the primary is killed
SUBMITTERS = 4

needs_sentinel = pytest.mark.skipif(
    shutil.which("redis-sentinel") is None or shutil.which("redis-server") is None,
    reason="redis-server and redis-sentinel (Debian packages; `make test` installs them)",
)


# ---- the URL forms (no servers) --------------------------------------------------------


def test_sentinel_urls_parse_into_sentinels_service_db_and_escaped_password() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://:p%2Fw%23d%3F@10.0.0.1:26379,sentinel-b,[::1]:26380/mymaster/2"
        "?sentinel_password=s3"
    )
    assert parsed.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db, parsed.password) == ("mymaster", 2, "p/w#d?")
    assert parsed.sentinel_password == "s3" and parsed.username is None
    assert parse_sentinel_url("redis+sentinel://h/m").db == 0
    assert is_sentinel("redis+sentinel://h/m") and not is_sentinel("redis://h:6379/0")
    for bad in (
        "redis+sentinel://h",
        "redis+sentinel://h/m/x",
        "redis+sentinel:///m",
        "redis+sentinel://h:port/m",
        "redis://h/m",
    ):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def test_the_broker_follows_the_same_url_through_kombus_sentinel_transport() -> None:
    url, options = kombu_broker("redis+sentinel://:p%2Fw@h1:26379,h2:26380/mymaster/1")
    assert url == "sentinel://:p%2Fw@h1:26379/1;sentinel://:p%2Fw@h2:26380/1"
    assert options["master_name"] == "mymaster"
    assert kombu_broker("redis://h:6379/0") == ("redis://h:6379/0", {})
    assert kombu_broker("amqp://u:p@rabbit//") == ("amqp://u:p@rabbit//", {})


# ---- a loopback Sentinel deployment ------------------------------------------------------


@dataclass
class Sentinels:
    workdir: Path
    redis_ports: list[int]
    sentinel_ports: list[int]
    nodes: dict[int, procs.Child] = field(default_factory=dict)  # port -> redis-server
    sentinels: list[procs.Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def start_node(self, port: int, replica_of: int | None = None) -> procs.Child:
        node_dir = self.workdir / f"redis-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        conf = node_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {node_dir}",
                    'save ""',
                    "appendonly no",
                    "daemonize no",
                    "loglevel notice",
                    "repl-diskless-sync-delay 0",  # one replica: no point waiting for more to sync
                    *([f"replicaof 127.0.0.1 {replica_of}"] if replica_of else []),
                ]
            )
            + "\n"
        )
        child = procs.spawn(
            f"redis-{port}", ["redis-server", str(conf)], log_file=node_dir / "redis.log"
        )
        self.nodes[port] = child
        procs.wait_until(lambda: procs.port_open(port), 20, f"redis on {port}")
        return child

    def start(self) -> None:
        primary, replica = self.redis_ports
        self.start_node(primary)
        self.start_node(replica, replica_of=primary)
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"  # sentinels rewrite their config
            conf.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        f"dir {self.workdir}",
                        "daemonize no",
                        "loglevel notice",
                        f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2",
                        f"sentinel down-after-milliseconds {MASTER} 1000",
                        f"sentinel failover-timeout {MASTER} 3000",
                        f"sentinel parallel-syncs {MASTER} 1",
                    ]
                )
                + "\n"
            )
            self.sentinels.append(
                procs.spawn(
                    f"sentinel-{port}",
                    ["redis-sentinel", str(conf)],
                    log_file=self.workdir / f"sentinel-{port}.log",
                )
            )
        # Ready when the replica is in sync and every sentinel knows the replica and the
        # two other sentinels (they find each other through the master within seconds).
        replica_client = redis.Redis(port=replica)
        procs.wait_until(
            lambda: replica_client.info("replication")["master_link_status"] == "up",
            30,
            "the replica's link",
        )
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port)
            procs.wait_until(
                lambda s=sentinel: (
                    len(s.sentinel_sentinels(MASTER)) == 2 and len(s.sentinel_slaves(MASTER)) == 1
                ),
                60,
                f"sentinel {port}",
            )

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels reports it."""
        votes: Counter[int] = Counter()
        for port in self.sentinel_ports:
            try:
                sentinel = redis.Redis(port=port, socket_timeout=1)
                votes[int(sentinel.sentinel_get_master_addr_by_name(MASTER)[1])] += 1
            except (redis.RedisError, TypeError):
                continue
        if not votes:
            return None
        port, count = votes.most_common(1)[0]
        return port if count >= 2 else None

    def stop(self) -> None:
        for child in self.sentinels:
            child.stop(grace=5)
        for child in self.nodes.values():
            child.stop(grace=5)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    deployment = Sentinels(
        tmp_path / "redis",
        [procs.free_port() for _ in range(2)],
        [procs.free_port() for _ in range(3)],
    )
    deployment.workdir.mkdir(parents=True)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


@pytest.mark.fleet
@needs_sentinel
def test_wait_confirms_a_replica_and_refuses_without_one(sentinels: Sentinels) -> None:
    client = connect(sentinels.url, socket_timeout=5)
    client.set("imagefleet:test", "1")
    wait_for_replicas(client, 1, 2000)  # the replica is in sync: at once
    with pytest.raises(NotReplicated):
        wait_for_replicas(client, 2, 200)  # there is only one
    client.close()


@pytest.mark.fleet
@needs_sentinel
def test_kombus_sentinel_transport_pushes_the_message_the_gateway_prebuilds(
    sentinels: Sentinels,
) -> None:
    """The gateway's fast path writes the task message to the master itself: it must be
    what Celery sends through the sentinel transport, in the list the workers pop."""
    from kombu import Connection

    from imagefleet.settings import load_settings
    from tests.fleet_helpers import normalised_message
    from worker.celery_app import RUN_JOB, app, redis_job_message, time_limits

    cfg = load_settings()
    queue, ours = redis_job_message("job-1", "ocr", cfg)
    probe = f"probe-{uuid.uuid4().hex}"  # no worker listens here
    soft, hard = time_limits("ocr", cfg)
    url, options = kombu_broker(sentinels.url)
    with Connection(url, transport_options=options) as connection:
        app.send_task(
            RUN_JOB,
            args=["job-1"],
            queue=probe,
            connection=connection,
            soft_time_limit=soft,
            time_limit=hard,
        )
    client = connect(sentinels.url)
    theirs = client.lpop(probe)
    client.delete(f"_kombu.binding.{probe}", f"_kombu.binding_permanent.{probe}")
    client.close()
    assert queue == "ocr" and theirs is not None
    assert normalised_message(ours) == normalised_message(theirs)


# ---- the fleet through a failover --------------------------------------------------------


@dataclass
class Submissions:
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    replies: dict[str, set[str]] = field(default_factory=dict)  # key -> job ids seen in 202s
    accepted_at: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    refused: Counter[str] = field(default_factory=Counter)  # 503s, connection errors
    unexpected: list[str] = field(default_factory=list)  # anything but 503 UNAVAILABLE
    lock: threading.Lock = field(default_factory=threading.Lock)
    kill_now: threading.Event = field(default_factory=threading.Event)


def _submit_all(fleet: Fleet, keys: list[str], log: Submissions, body: dict) -> None:
    with fleet.client() as client:
        for key in keys:
            deadline = time.monotonic() + 120
            while True:
                sent = time.monotonic()
                try:
                    reply = client.post(
                        "/v1/jobs", json=body, headers={"Idempotency-Key": key}, timeout=15
                    )
                except httpx.HTTPError as exc:
                    with log.lock:
                        log.refused[type(exc).__name__] += 1
                else:
                    if reply.status_code == 202:
                        with log.lock:
                            log.accepted[key] = reply.json()["id"]
                            log.replies.setdefault(key, set()).add(reply.json()["id"])
                            log.accepted_at.append((sent, time.monotonic()))
                            if len(log.accepted) >= KILL_AFTER:
                                log.kill_now.set()
                        break
                    with log.lock:
                        log.refused[reply.json()["error"]["message"][:40]] += 1
                        if reply.status_code != 503 or reply.json()["error"]["code"] != (
                            "UNAVAILABLE"
                        ):
                            log.unexpected.append(f"{reply.status_code} {reply.text}")
                if time.monotonic() > deadline:
                    log.unexpected.append(f"{key} refused for 120 s")
                    return
                time.sleep(0.05)  # Retry-After says 1-2 s; shorter, to time the pause


def _wait_for_jobs(jobs: JobStore, job_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for job_id in job_ids:
            try:
                record = jobs.get(job_id)
            except redis.ConnectionError:
                record = None
            states[job_id] = record.status.value if record else "missing"
        pending = [j for j, s in states.items() if s not in ("succeeded", "failed", "canceled")]
        if not pending or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


@pytest.mark.fleet
@needs_sentinel
def test_the_fleet_carries_on_through_a_primary_failover(
    sentinels: Sentinels, tmp_path: Path
) -> None:
    fleet = start_fleet(
        tmp_path / "var",
        {
            "FLEET_REDIS_URL": sentinels.url,
            "FLEET_BROKER_URL": "",  # broker: the same URL
            "FLEET_REQUEUE_AFTER_SECONDS": "5",
            "FLEET_SWEEP_INTERVAL": "1",
        },
    )
    try:
        client = connect(sentinels.url, socket_timeout=5)
        jobs, ledger = JobStore(client, 3600), Ledger(client)
        with fleet.client() as http:
            http.put(
                "/v1/objects/in.png", content=images.encode(np.full((48, 64, 3), 90, np.uint8))
            ).raise_for_status()
            balance_before = http.get("/v1/usage").json()["balance_micros"]
        captures_before = sum(1 for e in ledger.entries("dev") if e["kind"] == "capture")
        assert captures_before == 0

        log = Submissions()
        keys = [f"failover-{i}" for i in range(JOBS)]
        bodies = [
            {"operation": "grayscale", "input": "in.png"},
            {"operation": "metadata", "input": "in.png"},
        ]
        threads = [
            threading.Thread(
                target=_submit_all,
                daemon=True,
                args=(fleet, keys[i::SUBMITTERS], log, bodies[i % 2]),
            )
            for i in range(SUBMITTERS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        assert log.kill_now.wait(60), "the first jobs were not accepted"

        primary, replica = sentinels.redis_ports
        assert sentinels.master_port() == primary
        os.kill(sentinels.nodes[primary].pid, signal.SIGKILL)
        killed = time.monotonic()
        accepted_before_kill = len(log.accepted)
        # The pause, timed by a client that starts submitting now (the stream's clients may
        # be held up by keys whose claim, but not job, reached the replica).
        prober = threading.Thread(
            target=_submit_all, daemon=True, args=(fleet, ["failover-probe"], log, bodies[0])
        )
        prober.start()
        threads.append(prober)
        procs.wait_until(lambda: sentinels.master_port() == replica, 30, "the failover")
        promoted = time.monotonic()
        sentinels.nodes[primary].stop(grace=0)  # reap it
        restarted = time.monotonic()
        sentinels.start_node(primary, replica_of=replica)  # back, as the new replica
        for thread in threads:
            thread.join(timeout=240)
        assert not any(t.is_alive() for t in threads), "submissions did not finish"
        assert not log.unexpected, log.unexpected
        submitted = time.monotonic()

        # Every accepted job ends, once, and is charged at most once.
        assert set(log.accepted) == {*keys, "failover-probe"}
        assert all(len(ids) == 1 for ids in log.replies.values()), "a key made two jobs"
        job_ids = list(log.accepted.values())
        states = _wait_for_jobs(jobs, job_ids, 180)
        ended = time.monotonic()
        assert Counter(states.values()) == Counter({"succeeded": JOBS + 1}), Counter(
            states.values()
        )
        procs.wait_until(lambda: not ledger.open_holds("dev"), 60, "orphaned holds released")
        entries = ledger.entries("dev")
        captures = Counter(e["job"] for e in entries if e["kind"] == "capture")
        assert set(captures) == set(job_ids), "charges and accepted jobs differ"
        assert max(captures.values()) == 1, "a job was charged twice"
        charged = sum(int(e["amount"]) for e in entries if e["kind"] == "capture")
        with fleet.client() as http:
            balance_after = http.get("/v1/usage").json()["balance_micros"]
        assert balance_before - balance_after == charged
        reconcile = subprocess.run(
            [sys.executable, "-m", "imagefleet.cli", "billing", "reconcile"],
            env=dict(os.environ, FLEET_REDIS_URL=sentinels.url, FLEET_VAR_DIR=str(fleet.var_dir)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr

        first_after = min(answered for sent, answered in log.accepted_at if sent > killed)
        print(
            f"\nsentinel failover: {JOBS + 1} jobs ({accepted_before_kill} accepted before"
            f" the kill), {sum(log.refused.values())} refusals retried {dict(log.refused)};"
            f" sentinels name the new master {promoted - killed:.2f} s after the kill"
            f" (polled every 0.1 s), old primary restarted as its replica at"
            f" {restarted - killed:.2f} s; failover pause (kill -> first 202)"
            f" {first_after - killed:.2f} s; {len(captures)} captures, one per job;"
            f" submissions {submitted - started:.1f} s, all ended {ended - started:.1f} s"
        )
        client.close()
    finally:
        fleet.stop()
