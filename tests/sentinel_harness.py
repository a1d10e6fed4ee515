"""A loopback Redis Sentinel deployment for the tests: a primary, its replica and three
sentinels as child processes (no Docker). The `sentinels` fixture (conftest.py) starts one
per test."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import redis

from imagefleet import procs

MASTER = "fleetmaster"

needs_sentinel = pytest.mark.skipif(
    shutil.which("redis-sentinel") is None or shutil.which("redis-server") is None,
    reason="redis-server and redis-sentinel (Debian packages; `make test` installs them)",
)


def _knows_the_others(sentinel: redis.Redis) -> bool:
    """The sentinel has found the two other sentinels and the replica."""
    others, replicas = sentinel.sentinel_sentinels(MASTER), sentinel.sentinel_slaves(MASTER)
    assert isinstance(others, list) and isinstance(replicas, list)  # one entry per node
    return len(others) == 2 and len(replicas) == 1


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
            procs.wait_until(partial(_knows_the_others, sentinel), 60, f"sentinel {port}")

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels reports it."""
        votes: Counter[int] = Counter()
        for port in self.sentinel_ports:
            try:
                sentinel = redis.Redis(port=port, socket_timeout=1)
                address = sentinel.sentinel_get_master_addr_by_name(MASTER)  # None: no master
            except redis.RedisError:
                continue
            if isinstance(address, tuple):
                votes[int(address[1])] += 1
        if not votes:
            return None
        port, count = votes.most_common(1)[0]
        return port if count >= 2 else None

    def stop(self) -> None:
        for child in self.sentinels:
            child.stop(grace=5)
        for child in self.nodes.values():
            child.stop(grace=5)


def start_sentinels(workdir: Path) -> Sentinels:
    """A deployment on free ports under `workdir`, started; stopped again if it fails to."""
    deployment = Sentinels(
        workdir, [procs.free_port() for _ in range(2)], [procs.free_port() for _ in range(3)]
    )
    deployment.workdir.mkdir(parents=True)
    try:
        deployment.start()
    except BaseException:
        deployment.stop()
        raise
    return deployment
