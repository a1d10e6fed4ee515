"""The fair share's scripts (jobs/fairshare.py) against a real Redis of the test's own: who
takes a slot, who is parked, what an end feeds, what the sweeper's recount repairs.
Records are stored as the fleet stores them (JobStore), so ends release through
`JobStore.apply` exactly as a worker's or a cancel's would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from imagefleet import procs
from jobs import fairshare, lifecycle
from jobs.crop import CropJob
from jobs.fairshare import Take
from jobs.records import JobError, JobRecord, JobStatus, new_job_id, now
from jobs.spec import Rect
from jobs.store import ACTIVE, JobStore

POOL = "cpu"  # crop runs on the cpu pool


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[JobStore]:
    port = procs.free_port()
    child = procs.spawn("redis", procs.redis_argv(port, tmp_path / "redis"))
    try:
        procs.wait_until(lambda: procs.port_open(port), 20, "redis")
        client = redis.Redis(port=port)
        yield JobStore(client, 600)
        client.close()
    finally:
        child.stop()


def _job(jobs: JobStore, tenant: str) -> JobRecord:
    created = now()
    record = JobRecord(
        id=new_job_id(),
        tenant=tenant,
        operation="crop",
        status=JobStatus.QUEUED,
        spec=CropJob(input="in.png", rect=Rect(0, 0, 8, 8), format="png"),
        created_at=created,
        updated_at=created,
    )
    jobs.create(record)
    return record


def _take(jobs: JobStore, record: JobRecord) -> Take:
    return fairshare.take(jobs.redis, record, f"message of {record.id}".encode(), ACTIVE)


def _start(jobs: JobStore, record: JobRecord) -> JobRecord:
    """Take the slot and mark the job running, as the runner does."""
    assert _take(jobs, record) is not Take.PARKED
    started = jobs.apply(record.id, lifecycle.start("task", lambda r: None))
    assert started is not None
    return started


def _end(jobs: JobStore, record: JobRecord) -> None:
    assert jobs.apply(record.id, lifecycle.fail(JobError("TIMEOUT", "t"))) is not None


def _queue(jobs: JobStore) -> list[bytes]:
    entries = cast(list[bytes], jobs.redis.lrange(POOL, 0, -1))
    return entries[::-1]  # oldest first, as consumed


def _fields(jobs: JobStore) -> dict[str, int]:
    raw = cast(dict[bytes, bytes], jobs.redis.hgetall(fairshare.pool_key(POOL)))
    return {k.decode(): int(v) for k, v in raw.items() if not k.startswith(b"job:")}


def _now(jobs: JobStore, record: JobRecord) -> JobRecord:
    current = jobs.get(record.id)
    assert current is not None
    return current


def _register(jobs: JobStore, processes: int) -> None:
    assert fairshare.register(jobs.redis, POOL, "node-1", processes, ACTIVE) == processes


def test_a_lone_tenant_takes_every_share_process_and_no_more(jobs: JobStore) -> None:
    _register(jobs, 2)
    a = [_job(jobs, "a") for _ in range(4)]
    assert [_take(jobs, r) for r in a] == [Take.TAKEN, Take.TAKEN, Take.PARKED, Take.PARKED]
    assert _take(jobs, a[2]) is Take.PARKED  # sent again: parked once, in its place
    assert _fields(jobs) == {"S": 2, "total": 2, "n": 1, "t:a": 2, "b:a": 2, "w": 1, "p": 2}
    assert _now(jobs, a[2]).status is JobStatus.QUEUED  # parked is still queued


def test_an_end_feeds_its_tenants_next_parked_job_with_its_message(jobs: JobStore) -> None:
    _register(jobs, 2)
    a = [_job(jobs, "a") for _ in range(4)]
    running = [_start(jobs, a[0]), _start(jobs, a[1])]
    assert [_take(jobs, a[2]), _take(jobs, a[3])] == [Take.PARKED, Take.PARKED]
    _end(jobs, running[0])
    assert _queue(jobs) == [f"message of {a[2].id}".encode()]  # the oldest parked, once
    assert _take(jobs, a[2]) is Take.HELD  # its slot came with it
    assert _fields(jobs)["p"] == 1 and _fields(jobs)["t:a"] == 2


def test_another_tenant_takes_the_reserve_and_the_shares_split(jobs: JobStore) -> None:
    _register(jobs, 2)
    a = [_job(jobs, "a") for _ in range(5)]
    a_running = [_start(jobs, a[0]), _start(jobs, a[1])]
    assert _take(jobs, a[2]) is Take.PARKED
    b = [_job(jobs, "b") for _ in range(3)]
    assert _take(jobs, b[0]) is Take.TAKEN  # under its share: a reserve process runs it
    # Two tenants now: a share of 1 each, and 3 slots held of S=2: nobody else starts.
    assert _take(jobs, b[1]) is Take.PARKED
    assert _take(jobs, a[3]) is Take.PARKED
    _end(jobs, a_running[0])  # a holds 1 = its share; b holds 1 = its share: no feed
    assert _queue(jobs) == []
    _end(jobs, a_running[1])  # a holds 0: its oldest parked job gets the slot
    assert _queue(jobs) == [f"message of {a[2].id}".encode()]


def test_a_canceled_parked_job_leaves_its_backlog(jobs: JobStore) -> None:
    _register(jobs, 1)
    a = [_job(jobs, "a") for _ in range(3)]
    first = _start(jobs, a[0])
    assert [_take(jobs, a[1]), _take(jobs, a[2])] == [Take.PARKED, Take.PARKED]
    assert jobs.apply(a[1].id, lifecycle.CANCEL) is not None
    _end(jobs, first)
    assert _queue(jobs) == [f"message of {a[2].id}".encode()]  # not the canceled one
    assert _fields(jobs)["p"] == 0


def test_without_a_registered_worker_nobody_is_parked(jobs: JobStore) -> None:
    a = [_job(jobs, "a") for _ in range(5)]
    assert {_take(jobs, r) for r in a} == {Take.TAKEN}


def test_a_run_taking_over_a_running_job_is_never_parked(jobs: JobStore) -> None:
    _register(jobs, 1)
    a = [_job(jobs, "a") for _ in range(2)]
    _start(jobs, a[0])
    running = jobs.apply(a[1].id, lifecycle.start("task", lambda r: None))  # no slot taken
    assert running is not None and _take(jobs, running) is Take.TAKEN


def test_the_recount_drops_slots_of_ended_jobs_and_feeds(jobs: JobStore) -> None:
    _register(jobs, 1)
    a = [_job(jobs, "a") for _ in range(2)]
    assert _take(jobs, a[0]) is Take.TAKEN  # ... and its run died before it started
    assert _take(jobs, a[1]) is Take.PARKED
    assert fairshare.slots(jobs.redis, POOL) == {a[0].id: "a"}
    assert fairshare.waits_its_turn(jobs.redis, _now(jobs, a[1]))
    jobs.redis.hset(fairshare.pool_key(POOL), "total", 7)  # a drifted count is recounted
    assert fairshare.tidy(jobs.redis, POOL, [a[0].id], ACTIVE) == 1
    assert _queue(jobs) == [f"message of {a[1].id}".encode()]
    assert fairshare.slots(jobs.redis, POOL) == {a[1].id: "a"}
    assert _fields(jobs)["total"] == 1 and _fields(jobs)["p"] == 0


def test_a_parked_job_without_a_message_is_left_to_the_sweeper(jobs: JobStore) -> None:
    _register(jobs, 1)
    a = [_job(jobs, "a") for _ in range(2)]
    first = _start(jobs, a[0])
    assert fairshare.take(jobs.redis, a[1], b"", ACTIVE) is Take.PARKED  # another broker
    _end(jobs, first)
    assert _queue(jobs) == []
    assert jobs.idle(0.0)[0] == a[1].id  # first in the sweeper's idle index: sent next pass


def test_workers_register_their_share_processes_and_leave(jobs: JobStore) -> None:
    assert fairshare.register(jobs.redis, POOL, "node-1", 2, ACTIVE) == 2
    assert fairshare.register(jobs.redis, POOL, "node-2", 3, ACTIVE) == 5
    assert fairshare.register(jobs.redis, POOL, "node-1", 2, ACTIVE, alive=False) == 3


def test_a_job_nobody_waits_behind_costs_seven_commands(jobs: JobStore) -> None:
    """Issue 25 (b): the share's whole cost for a job when nobody is waiting, counted as
    `INFO commandstats` counts (a script's own calls included): its take and its release."""
    _register(jobs, 2)
    _take(jobs, _job(jobs, "warm-up"))  # the script is loaded once per Redis
    record = _job(jobs, "a")
    jobs.redis.config_resetstat()
    assert _take(jobs, record) is Take.TAKEN
    with jobs.redis.pipeline() as pipe:
        fairshare.release_in(pipe, record, ACTIVE)
        pipe.execute()
    stats = cast(dict[str, dict[str, int]], jobs.redis.info("commandstats"))
    calls = {name: row["calls"] for name, row in stats.items()}
    for wrapper in ("cmdstat_config|resetstat", "cmdstat_multi", "cmdstat_exec"):
        calls.pop(wrapper, None)
    assert sum(calls.values()) == 7, calls
    assert record.id not in fairshare.slots(jobs.redis, POOL)


def test_a_batch_takes_its_share_and_parks_the_rest_in_order(jobs: JobStore) -> None:
    _register(jobs, 2)
    batch = [_job(jobs, "a") for _ in range(4)]
    with jobs.redis.pipeline() as pipe:
        fairshare.admit_in(
            pipe, "a", POOL, [(r.id, f"m{i}".encode()) for i, r in enumerate(batch)], ACTIVE
        )
        pipe.execute()
    assert _queue(jobs) == [b"m0", b"m1"]  # two slots, their messages in order
    assert [_take(jobs, r) for r in batch[:2]] == [Take.HELD, Take.HELD]
    assert _fields(jobs) == {"S": 2, "total": 2, "n": 1, "t:a": 2, "b:a": 2, "w": 1, "p": 2}
    jobs.redis.delete(POOL)
    started = jobs.apply(batch[0].id, lifecycle.start("task", lambda r: None))
    assert started is not None
    _end(jobs, started)
    assert _queue(jobs) == [b"m2"]  # the oldest parked job of the batch is next
