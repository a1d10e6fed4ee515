"""The production stack under faults (the stack of tests/test_stack.py, started once per
session by tests/conftest.py's fleet_stack): mixed jobs with Idempotency-Keys while a
worker-cpu container, a gateway replica and the Redis container are killed (Redis restarted
on its append-only file). Every accepted job ends exactly once, the balance moves by exactly
the captures, and `imagefleet billing reconcile` is clean.

Skipped where tests/test_stack.py is: no Docker engine can run here, or FLEET_SKIP_STACK=1.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests import images
from tests.fleet_helpers import wait_all_ended
from tests.stack_harness import Stack, api_client, docker, text_png
from tests.stack_session import say_to

pytestmark = pytest.mark.fleet  # starts its own servers

FAULT_JOBS = 320
SUBMIT_EVERY = 0.1  # seconds between submissions: ~32 s of them, faults in between


@dataclass
class FaultRun:
    running: Stack
    key: str
    say: Callable[[str], None]
    keys: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    expect_fail: set[str] = field(default_factory=set)
    submitted: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    victim_jobs: dict[str, float] = field(default_factory=dict)  # job id -> kill time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, client: httpx.Client, body: dict[str, Any], patience: float = 240) -> None:
        """As a careful client: one Idempotency-Key, the same on every retry (503s while
        Redis is down, connection errors while a gateway dies)."""
        key = str(uuid.uuid4())
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError as exc:
                with self.lock:
                    self.retries[type(exc).__name__] += 1
                time.sleep(0.3)
                continue
            if response.status_code in (200, 202):
                job_id = response.json()["id"]
                with self.lock:
                    if self.keys.setdefault(key, job_id) != job_id:
                        self.problems.append(f"key {key}: two jobs {self.keys[key]}, {job_id}")
                    if body.get("input") == "corrupt.jpg":
                        self.expect_fail.add(job_id)
                return
            if response.status_code in (429, 502, 503, 504):
                with self.lock:
                    self.retries[str(response.status_code)] += 1
                time.sleep(0.3)
                continue
            with self.lock:
                self.problems.append(f"refused {response.status_code}: {response.text[:200]}")
            return
        with self.lock:
            self.problems.append(f"never accepted: {body}")

    def kill_busy_worker(self) -> None:
        """docker kill the worker-cpu container that is running jobs right now (Celery's
        inspect names them), remembering which jobs it had."""
        code = (
            "import json; from imagefleet.dispatch import app;"
            " print(json.dumps(app.control.inspect(timeout=1.5).active() or {}))"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            active = json.loads(self.running.python(code, service="sweeper"))
            hosts = {
                docker("inspect", "--format", "{{.Config.Hostname}}", name).stdout.strip(): name
                for name in self.running.containers("worker-cpu")
            }
            busy = [
                (node, tasks)
                for node, tasks in active.items()
                if node.startswith("cpu-") and tasks and node.split("@")[1] in hosts
            ]
            if busy:
                node, tasks = max(busy, key=lambda item: len(item[1]))
                name = hosts[node.split("@")[1]]
                docker("kill", name)
                killed_at = time.time()
                for task in tasks:
                    self.victim_jobs[task["args"][0]] = killed_at
                self.faults.append(f"docker kill {name} ({len(tasks)} job(s) in flight)")
                self.say(f"faults: killed {name} with {len(tasks)} job(s) in flight")
                return
            time.sleep(0.2)
        self.problems.append("no worker-cpu container was ever busy: none killed")

    def kill_gateway(self) -> None:
        name = self.running.containers("gateway")[0]
        docker("kill", name)
        self.faults.append(f"docker kill {name}")
        self.say(f"faults: killed gateway replica {name}")

    def kill_and_restart_redis(self) -> None:
        name = self.running.container("redis")
        docker("kill", name)
        killed = time.monotonic()
        time.sleep(2)
        docker("start", name)  # a killed container stays down under unless-stopped
        self.faults.append(f"docker kill {name}, docker start after 2 s (append-only file)")
        self.say(
            f"faults: killed Redis {name} and started it again ({time.monotonic() - killed:.1f} s)"
        )


def _inputs() -> dict[str, bytes]:
    photo = images.encode(images.photo_like(640, 480, seed=7), "JPEG", quality=85)
    logo = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((60, 40, 240, 160), fill=(200, 30, 30, 255))
    buf = io.BytesIO()
    logo.save(buf, "PNG")
    return {
        "photo.jpg": photo,
        "logo.png": buf.getvalue(),
        "text.png": text_png("fault run 7"),
        "big.jpg": images.encode(images.photo_like(2400, 1800, seed=3), "JPEG"),
        "corrupt.jpg": photo[:300] + random.Random(1).randbytes(2000),
    }


JOB_MIX: list[tuple[int, dict[str, Any]]] = [
    (6, {"operation": "resize", "input": "photo.jpg", "width": 200}),
    (
        3,
        {
            "operation": "crop",
            "input": "photo.jpg",
            "width": 120,
            "height": 90,
            "gravity": "entropy",
        },
    ),
    (2, {"operation": "convert", "input": "logo.png", "format": "webp"}),
    (2, {"operation": "blur", "input": "photo.jpg", "sigma": 2}),
    (
        2,
        {
            "operation": "pipeline",
            "input": "photo.jpg",
            "steps": [{"operation": "resize", "width": 320}, {"operation": "sharpen"}],
        },
    ),
    (3, {"operation": "resize", "input": "big.jpg", "width": 5000, "format": "webp"}),  # ~1 s
    (1, {"operation": "metadata", "input": "photo.jpg"}),
    (1, {"operation": "dominant-color", "input": "logo.png"}),
    (2, {"operation": "ocr", "input": "text.png"}),
    (1, {"operation": "from-html", "html": "<p>fault run</p>", "width": 200, "height": 100}),
    (1, {"operation": "grayscale", "input": "logo.png", "webhook_url": "http://hooks:9000/fault"}),
    (1, {"operation": "grayscale", "input": "corrupt.jpg"}),  # fails: unreadable
]

LEDGER = """
import json, redis
from billing.accounts import Accounts
from billing.ledger import Ledger
from imagefleet.settings import settings
client = redis.Redis.from_url(settings().redis_url)
account = Accounts(client).require({name!r})
ledger = Ledger(client)
print(json.dumps({{"balance": account.balance_micros, "held": account.held_micros,
                  "open_holds": ledger.open_holds({name!r}), "entries": ledger.entries({name!r})}}))
"""


def _ledger(running: Stack, name: str) -> dict[str, Any]:
    return json.loads(running.python(LEDGER.format(name=name)))


def _all_jobs(client: httpx.Client) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params).raise_for_status().json()
        found.update(job["id"] for job in page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor or not page["jobs"]:
            return found


def _seconds(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def test_fault_run_every_accepted_job_ends_once_and_the_books_balance(
    fleet_stack: Stack, stack_receiver: str, request: pytest.FixtureRequest
) -> None:
    say = say_to(request)
    name = "faults"
    key, _ = fleet_stack.create_account(name, "1000.00", rate_limit=100_000)
    before = _ledger(fleet_stack, name)["balance"]
    run = FaultRun(fleet_stack, key, say)
    rng = random.Random(14)
    plan = [
        rng.choices([b for _, b in JOB_MIX], [w for w, _ in JOB_MIX])[0] for _ in range(FAULT_JOBS)
    ]
    faults = [
        (0.15, run.kill_busy_worker),
        (0.4, run.kill_gateway),
        (0.65, run.kill_and_restart_redis),
    ]

    def fault_schedule() -> None:  # one after another, as the submissions pass each mark
        for share, fault in faults:
            while run.submitted < FAULT_JOBS * share:
                time.sleep(0.05)
            fault()

    with api_client(fleet_stack, key) as client:
        for object_name, data in _inputs().items():
            client.put(f"/v1/objects/{object_name}", content=data).raise_for_status()
        started = time.monotonic()
        faulter = threading.Thread(target=fault_schedule, daemon=True)
        faulter.start()

        def one(index: int) -> None:  # paced, so that the faults land among submissions
            time.sleep(max(0.0, started + index * SUBMIT_EVERY - time.monotonic()))
            with run.lock:
                run.submitted += 1
            run.submit(client, plan[index])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(FAULT_JOBS)))
        submitted_in = time.monotonic() - started
        faulter.join(timeout=180)
        job_ids = sorted(set(run.keys.values()))
        say(f"faults: {len(job_ids)} jobs accepted in {submitted_in:.0f} s; waiting for all to end")
        ended = wait_all_ended(client, job_ids, timeout=900)
        wall = time.monotonic() - started
        listed = _all_jobs(client)
    books = _ledger(fleet_stack, name)
    reconcile = fleet_stack.exec("gateway", "imagefleet", "billing", "reconcile", check=False)

    # Every accepted job ends, once; no job exists that was not accepted.
    problems = list(run.problems)
    problems += [f"{j} never ended" for j in job_ids if j not in ended]
    if listed != set(job_ids):
        problems.append(
            f"the account lists {len(listed)} jobs for {len(job_ids)} accepted"
            f" (extra {sorted(listed - set(job_ids))[:5]})"
        )
    captures = Counter(e["job"] for e in books["entries"] if e["kind"] == "capture")
    captured = sum(int(e["amount"]) for e in books["entries"] if e["kind"] == "capture")
    statuses: Counter[str] = Counter()
    for job_id, job in ended.items():
        statuses[
            job["status"] if job["status"] != "failed" else f"failed {job['error']['code']}"
        ] += 1
        if job["status"] == "succeeded":
            if captures[job_id] != 1:
                problems.append(f"{job_id}: succeeded with {captures[job_id]} captures")
        elif captures[job_id] != (job["billing"]["state"] == "captured"):  # billing/endings.py
            problems.append(f"{job_id}: {job['status']} {job['billing']['state']} but captured")
        if job["status"] == "failed" and job_id not in run.expect_fail:
            problems.append(f"{job_id} ({job['operation']}) failed: {job['error']}")
        if job["status"] != "failed" and job_id in run.expect_fail:
            problems.append(f"{job_id}: a corrupt input did not fail")
    charged = sum(j["billing"]["charged_micros"] for j in ended.values())
    if before - books["balance"] != captured or captured != charged:
        problems.append(
            f"balance moved {before - books['balance']}, captures {captured},"
            f" jobs charged {charged}"
        )
    if books["held"] or books["open_holds"]:
        problems.append(f"holds left: {books['held']} {books['open_holds']}")
    if reconcile.returncode != 0:
        problems.append(f"reconcile: {reconcile.stdout[-600:]}")
    hooked = {
        json.loads(c["body"])["id"]
        for c in fleet_stack.hooks(stack_receiver)
        if c["path"] == "/fault"
    }
    want_hooks = {j for j, job in ended.items() if (job["spec"].get("webhook_url") or "")}
    if want_hooks - hooked:
        problems.append(f"{len(want_hooks - hooked)} webhook(s) never delivered")

    # The killed worker's jobs: how long until the sweeper sent them again, and until they
    # ran again (behind whatever was queued by then).
    reruns: dict[str, float] = {}
    resends: dict[str, float] = {}
    sweeper_log = fleet_stack.logs(fleet_stack.container("sweeper"), tail=100_000)
    for job_id, killed_at in run.victim_jobs.items():
        rerun = ended.get(job_id)
        if rerun and _seconds(rerun["started_at"]) > killed_at:
            reruns[job_id] = _seconds(rerun["started_at"]) - killed_at
        for line in sweeper_log.splitlines():
            if job_id in line and "sending it again" in line and line.startswith("{"):
                resends.setdefault(job_id, _seconds(json.loads(line)["ts"]) - killed_at)
    rerun_text = (
        f"{len(reruns)} of {len(run.victim_jobs)} sent again after"
        f" {'/'.join(f'{v:.0f}' for v in resends.values()) or '?'} s, running again"
        f" after {min(reruns.values()):.0f}-{max(reruns.values()):.0f} s"
        if reruns
        else f"none of {len(run.victim_jobs)} needed to run again"
    )
    say(
        f"faults: {len(job_ids)} jobs ({FAULT_JOBS} submitted, retries {dict(run.retries)}),"
        f" faults: {'; '.join(run.faults)}"
    )
    say(
        f"faults: wall {wall:.0f} s, {len(job_ids) / wall:.1f} jobs/s; ended"
        f" {dict(statuses)}; {sum(captures.values())} captures = {captured} micro-$;"
        f" reruns {sum(j['attempts'] > 1 for j in ended.values())}; killed worker's jobs:"
        f" {rerun_text}; webhooks {len(hooked & want_hooks)}/{len(want_hooks)};"
        f" reconcile: {reconcile.stdout.strip().splitlines()[-1] if reconcile.stdout else '?'}"
    )
    assert len(run.faults) == 3, run.faults
    assert not problems, "\n".join(problems[:40])
