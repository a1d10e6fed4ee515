"""Issue 25: one tenant's many long jobs must not hold another tenant's small job behind
them. Before the fair share each pool was one FIFO queue: tenant A's 20 slow jobs made
every other tenant's job wait behind all of them (a 64x64 grayscale waited 70-74 s).

On the session fleet (2 cpu share processes, one reserve process): A fills the pool with
slow, honest pipelines; B's grayscale ends within a deadline while A still has jobs it
submitted earlier waiting (a FIFO queue cannot do that), and every one of A's jobs ends,
charged once. A lone tenant still runs two of its jobs at once (it is not throttled).
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import httpx
import redis

from billing.accounts import Accounts
from billing.reconcile import reconcile
from jobs.store import JobStore
from tests import images
from tests.fleet_harness import Fleet, process_table, wait_for_job
from tests.hostile_inputs import SLOW_STEPS

SLOW_SIDE = 3000  # 9 MP, ten blurs: seconds each on a free core, far longer loaded
A_JOBS = 6  # three rounds of the two share processes
B_DEADLINE = 15.0  # seconds for B's 64x64 grayscale; it takes well under one here
A_DEADLINE = 600.0  # A's jobs may each run to their 60 s soft limit on a loaded box


def _tenant(fleet: Fleet, credit: int) -> tuple[Accounts, str, str]:
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    name = f"fair{secrets.token_hex(5)}"
    return accounts, name, accounts.create(name, credit)[1]


def _slow_jobs(client: httpx.Client, count: int) -> list[str]:
    slow = images.encode(images.photo_like(SLOW_SIDE, SLOW_SIDE, seed=4), "JPEG")
    client.put("/v1/objects/slow.jpg", content=slow).raise_for_status()
    body = {"operation": "pipeline", "input": "slow.jpg", "steps": SLOW_STEPS}
    posted = [client.post("/v1/jobs", json=body) for _ in range(count)]
    return [response.raise_for_status().json()["id"] for response in posted]


def _wait_running(client: httpx.Client, job_ids: list[str], count: int) -> None:
    deadline = time.monotonic() + 120
    while [client.get(f"/v1/jobs/{j}").json()["status"] for j in job_ids].count("running") < count:
        assert time.monotonic() < deadline, f"fewer than {count} of {job_ids} running"
        time.sleep(0.1)


def _charged_once(fleet: Fleet, accounts: Accounts, name: str, jobs: list[dict]) -> None:
    """Every job ended, holds none, was captured at most once, and the balance moved by
    exactly what the jobs say they were charged."""
    assert all(job["status"] in ("succeeded", "failed") for job in jobs), jobs
    for job in jobs:
        kinds = [e["kind"] for e in accounts.ledger.entries(name) if e["job"] == job["id"]]
        assert kinds.count("hold") == 1 and kinds.count("capture") <= 1, (job["id"], kinds)
    account = accounts.require(name)
    charged = sum(job["billing"]["charged_micros"] for job in jobs)
    assert (account.balance_micros, account.held_micros) == (100_000_000 - charged, 0)
    client = redis.Redis.from_url(fleet.redis_url)
    problems = reconcile(Accounts(client), JobStore(client, 3600))
    assert [p for p in problems if p.startswith(f"{name}:")] == []


def _most_at_once(jobs: list[dict]) -> int:
    """The most of `jobs` running at the same moment, from their recorded start and end."""
    events = sorted(
        (datetime.fromisoformat(job[at]), step)
        for job in jobs
        for at, step in (("started_at", 1), ("finished_at", -1))
    )
    most = running = 0
    for _, step in events:  # an end at the very moment of a start is counted first
        running += step
        most = max(most, running)
    return most


def test_another_tenants_small_job_is_not_held_behind_a_tenants_long_jobs(
    dir_fleet: Fleet,
) -> None:
    a_accounts, a_name, a_key = _tenant(dir_fleet, 100_000_000)
    _, _, b_key = _tenant(dir_fleet, 100_000_000)
    with dir_fleet.client(a_key) as a, dir_fleet.client(b_key) as b:
        a_jobs = _slow_jobs(a, A_JOBS)
        try:
            _wait_running(a, a_jobs, 2)  # A holds both share processes
            b.put(
                "/v1/objects/small.png", content=images.encode(images.photo_like(64, 64))
            ).raise_for_status()
            posted = time.monotonic()
            small = b.post("/v1/jobs", json={"operation": "grayscale", "input": "small.png"})
            b_job = wait_for_job(b, small.raise_for_status().json()["id"], timeout=B_DEADLINE)
            b_seconds = time.monotonic() - posted
            a_then = [a.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in a_jobs]
        finally:
            a_ended = [wait_for_job(a, job_id, timeout=A_DEADLINE) for job_id in a_jobs]
    assert b_job["status"] == "succeeded", b_job
    assert b_seconds < B_DEADLINE
    # B overtook jobs A had submitted before it: a FIFO queue would have started them all
    # before B's.
    assert "queued" in a_then, a_then
    _charged_once(dir_fleet, a_accounts, a_name, a_ended)
    assert _most_at_once(a_ended) == 2  # A had both share processes, never the reserve


def test_a_lone_tenant_uses_every_share_process(dir_fleet: Fleet) -> None:
    accounts, name, key = _tenant(dir_fleet, 100_000_000)
    with dir_fleet.client(key) as client:
        job_ids = _slow_jobs(client, 4)
        ended = [wait_for_job(client, job_id, timeout=A_DEADLINE) for job_id in job_ids]
    assert [job["status"] for job in ended] == ["succeeded"] * 4, ended
    assert _most_at_once(ended) == 2  # both cpu share processes ran its jobs at once
    _charged_once(dir_fleet, accounts, name, ended)


def test_each_job_pool_runs_its_reserve_process(dir_fleet: Fleet) -> None:
    """The session fleet's cpu worker (FLEET_CPU_CONCURRENCY=2) runs 2 + 1 processes."""
    table = process_table()
    (master,) = [
        pid
        for pid, (ppid, args) in table.items()
        if ppid == dir_fleet.child.pid and args.endswith("--pool cpu")
    ]
    assert len([pid for pid, (ppid, _) in table.items() if ppid == master]) == 3
