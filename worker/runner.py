"""Run one job by id: load record -> read input -> decode -> operation -> encode -> write
output -> finish record. All I/O of a job happens here, at the edge; operations stay pure.

A job may run more than once (acks_late redelivery): the output key is deterministic,
terminal states are never left, and attempts past the cap end the job WORKER_LOST.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded
from redis.client import Pipeline

from billing.endings import failure_charge, move
from billing.ledger import Ledger
from imagefleet import metrics
from imagefleet.dispatch import Dispatch, dispatcher, parked_message
from imagefleet.logs import current_job
from imagefleet.settings import Settings
from jobs import fairshare, lifecycle
from jobs.errors import ErrorCode, FleetError
from jobs.prices import configured
from jobs.records import JobError, JobRecord, JobStatus, error_of, now
from jobs.registry import OPERATIONS
from jobs.store import ACTIVE, JobStore
from storage import ObjectStore, tenant_key
from worker import lease, poison, renewer
from worker.cancel import Canceled, checkpoint, watching
from worker.inputs import decode_inputs, plan_inputs
from worker.outputs import Encodings, Request, describe, encode_output, write_outputs

log = logging.getLogger("imagefleet.worker")


def _timed_out() -> JobError:
    return JobError(ErrorCode.TIMEOUT.value, "the job exceeded its time limit")


# Between steps, a running job re-reads its record (canceled? still this run's?) at most
# this often, in seconds; before writing it always does.
LOOK_EVERY = 0.25


class _Duplicate(Exception):
    """This message is a second copy of the job's work while a live run owns it."""


class _Parked(Exception):
    """The job's tenant holds its share of the pool: the job waits its turn (fairshare)."""


def overdue(record: JobRecord, client: redis.Redis) -> bool:
    """The run that owns a running job is over: nothing renewed its lease for a whole
    FLEET_LEASE_SECONDS, so its process, container or machine is gone (or it stalled that
    long, and then it stops at its next step: see `_run_leased`). Whatever the job's hard
    limit: a live run keeps renewing, however long it takes."""
    return not lease.held(client, record.id)


def _start(jobs: JobStore, job_id: str, task_id: str | None, cfg: Settings) -> JobRecord | None:
    def one_run_at_a_time(record: JobRecord) -> None:
        # A redelivery (same message: Celery sends it again only when its worker was lost)
        # runs again at once; a copy sent by the sweeper runs only once the owning run's
        # lease has expired. The lease key is watched with the record: of two copies racing
        # for an expired lease, one wins and the other finds the winner's lease.
        if (
            record.status is JobStatus.RUNNING
            and task_id is not None
            and record.task_id not in (None, task_id)
            and not overdue(record, jobs.redis)
        ):
            raise _Duplicate
        message = parked_message(record.id, record.operation, cfg)
        if fairshare.take(jobs.redis, record, message, ACTIVE) is fairshare.Take.PARKED:
            raise _Parked

    def grant(pipe: Pipeline, record: JobRecord) -> None:
        # In the same transaction: a running record always has its run's lease beside it,
        # and the attempt number in both says which run owns the job.
        lease.grant(pipe, job_id, record.attempts, cfg.lease_seconds)

    try:
        return jobs.apply(
            job_id,
            lifecycle.start(task_id, one_run_at_a_time),
            watch=(lease.key(job_id),),
            also=grant,
        )
    except _Duplicate:
        log.info("job %s is running under another message; this copy is dropped", job_id)
        return None
    except _Parked:
        log.info("job %s waits for its tenant's share of the pool (parked, still queued)", job_id)
        return None


def _fail(
    jobs: JobStore,
    ledger: Ledger,
    record: JobRecord,
    error: JobError,
    cfg: Settings,
    beat: lease.Beat | None = None,
) -> None:
    if beat is not None and beat.lost:  # a resent copy may own the job: its hold and its
        log.warning(
            "job %s: attempt %d lost its lease; it leaves the job to the run that owns it",
            record.id,
            record.attempts,
        )  # end are that run's, not ours
        return
    seconds = (now() - record.started_at).total_seconds() if record.started_at else None
    if beat is not None:
        beat.ending = True
    # Money first, as for a success: what the ending owes (billing/endings.py), priced as a
    # success would be, from what this run measured if it planned the work (an unreadable
    # header was held at the limit); a job seen ended has had its money moved.
    owed = failure_charge(error.code, min(_price(record, cfg), record.billing.quoted_micros))
    charged = move(ledger, record, owed)
    ended = jobs.apply(
        record.id, lifecycle.fail(error, charged), also=_ending(record, seconds, error)
    )
    if ended is not None:
        _notify(ended, dispatcher(cfg))
    elif seconds is not None:  # ended by another run or a cancel: this run still counts
        metrics.job_finished(jobs.redis, record.operation, seconds, error.code)


def _execute(record: JobRecord, objects: ObjectStore, cfg: Settings) -> dict[str, Any]:
    spec = record.spec
    datas, plan = plan_inputs(record, objects, cfg)  # bounded before anything is decoded
    if record.billing.megapixels is not None:  # metered: bill what the plan measured
        record.billing.megapixels = plan.megapixels()
        price = _price(record, cfg)
        if price > record.billing.quoted_micros:  # an unreadable header was held at
            raise FleetError(  # FLEET_MAX_MEGAPIXELS: never work past the hold
                ErrorCode.PAYMENT_REQUIRED,
                f"this job creates {record.billing.megapixels:g} MP, costing {price}"
                f" micro-$; {record.billing.quoted_micros} was held because the input's"
                " header could not be read at submission",
            )
    inputs = decode_inputs(record, datas, cfg)
    del datas
    checkpoint()
    output = OPERATIONS[record.operation].load_handler()(inputs, spec, cfg)
    del inputs
    if isinstance(output, Encodings):  # several outputs, encoded by the operation (variants)
        encoded = output.encoded
    elif output.picture is not None:
        request = Request.of(spec, output.quality)
        encoded = [encode_output(output.picture, request, cfg, f"jobs/{record.id}/output")]
    else:
        return output.fields
    checkpoint(before_writing=True)  # a job canceled by now writes nothing
    write_outputs(objects, record.tenant, encoded)
    if isinstance(output, Encodings):
        return {"variants": [describe(e, cfg) for e in encoded], **output.fields}
    result = {**describe(encoded[0], cfg), **output.fields}
    if spec.inline:
        result["data_base64"] = base64.b64encode(encoded[0].payload).decode()
    return result


def _notify(record: JobRecord, dispatch: Dispatch) -> None:
    if lifecycle.owes_settlement(record):  # an x402 payment: settled from the payments pool
        dispatch.settle(record.id)
    if record.spec.webhook_url:
        dispatch.webhook(record.id)


def _price(record: JobRecord, cfg: Settings) -> int:
    op = OPERATIONS[record.operation]
    rule = configured(op.name, op.billing, cfg.prices, cfg.flat_price_max_megapixels)
    return rule.price(record.billing.megapixels or 0)


def _capture(ledger: Ledger, record: JobRecord, cfg: Settings) -> int:
    """Charge the job (at most what was held); a second capture finds no hold and is 0."""
    return ledger.capture(
        record.tenant,
        record.id,
        _price(record, cfg),
        record.operation,
        record.billing.megapixels or 0,
    )


def run_job(
    job_id: str,
    jobs: JobStore,
    objects: ObjectStore,
    cfg: Settings,
    ledger: Ledger | None = None,
    task_id: str | None = None,
) -> None:
    ledger = ledger or Ledger(jobs.redis)
    token = current_job.set(job_id)  # every log line of this run carries the job id
    try:
        _run(job_id, jobs, objects, cfg, ledger, task_id)
    finally:
        current_job.reset(token)


def time_out(
    job_id: str, jobs: JobStore, ledger: Ledger, cfg: Settings, task_id: str | None = None
) -> None:
    """End a job whose run Celery killed at its hard time limit, if that run still owned it
    (a run that stalled past its lease may have lost the job to a resent copy, which goes on)."""
    record = jobs.get(job_id)
    if (
        record is not None
        and record.status is JobStatus.RUNNING
        and (task_id is None or record.task_id in (None, task_id))
    ):
        log.warning("job %s was killed at its hard time limit", job_id)
        _fail(jobs, ledger, record, _timed_out(), cfg)


def _run(
    job_id: str,
    jobs: JobStore,
    objects: ObjectStore,
    cfg: Settings,
    ledger: Ledger,
    task_id: str | None,
) -> None:
    record = _start(jobs, job_id, task_id, cfg)
    if record is None:
        log.info("job %s does not run now (unknown, ended, canceled or waiting)", job_id)
        return
    # The run's lease is renewed while it lasts (by this pool child's renewer process, which
    # needs none of this process's GIL; else a thread), and released after: if this process
    # dies, the job runs again in seconds.
    with renewer.leased(jobs.redis, job_id, record.attempts, cfg.lease_seconds) as beat:
        _run_leased(record, jobs, objects, cfg, ledger, beat)


def _run_leased(
    record: JobRecord,
    jobs: JobStore,
    objects: ObjectStore,
    cfg: Settings,
    ledger: Ledger,
    beat: lease.Beat,
) -> None:
    job_id = record.id
    kills = poison.kills(jobs.redis, job_id)
    if kills >= poison.KILLS_TO_POISON:  # its runs killed their worker child: not again
        log.error("job %s killed the worker running it %d times; failing it", job_id, kills)
        _fail(jobs, ledger, record, poison.error(kills), cfg)
        return
    if record.attempts > cfg.max_attempts:
        log.error("job %s was redelivered %d times; giving up", job_id, record.attempts - 1)
        _fail(
            jobs,
            ledger,
            record,
            JobError(
                ErrorCode.WORKER_LOST.value, "the worker running this job was lost too many times"
            ),
            cfg,
        )
        return
    started = time.monotonic()
    log.info(
        "job %s %s attempt %d started (pid %d)",
        job_id,
        record.operation,
        record.attempts,
        os.getpid(),
    )
    stopped_because = ""
    looked = started  # the record was read to start the run

    def stop(before_writing: bool) -> bool:
        # Checked between steps and before writing. Canceled; or this run is no longer the
        # job's: its lease could not be renewed for a whole term (it stalled, or lost
        # Redis) and a resent copy may own the job, or another run took or ended it.
        # Between steps the record is read again only LOOK_EVERY after the last read (a
        # short job reads it once more, before writing; a cancel costs a moment's work).
        nonlocal stopped_because, looked
        if beat.lost:
            stopped_because = "lost its lease"
            return True
        if not before_writing and time.monotonic() - looked < LOOK_EVERY:
            return False
        looked = time.monotonic()
        now_record = jobs.get(job_id)
        if now_record is None or now_record.status is JobStatus.CANCELED:
            stopped_because = "was canceled"
        elif now_record.status is not JobStatus.RUNNING or now_record.attempts != record.attempts:
            stopped_because = "was taken or ended by another run"
        return bool(stopped_because)

    try:
        with watching(stop):
            result = _execute(record, objects, cfg)
    except Canceled:
        log.info(
            "job %s %s while running; stopped before writing anything", job_id, stopped_because
        )
        return
    except FleetError as exc:
        log.info("job %s failed: %s %s", job_id, exc.code.value, exc.message)
        _fail(jobs, ledger, record, error_of(exc), cfg, beat)
        return
    except SoftTimeLimitExceeded:
        log.warning("job %s hit its time limit", job_id)
        _fail(jobs, ledger, record, _timed_out(), cfg, beat)
        return
    except (redis.ConnectionError, redis.TimeoutError):
        raise  # Redis went away mid-job (a checkpoint, a lease): the task waits and reruns
    except Exception as exc:  # an unexpected bug must still end the job, not lose it
        log.exception("job %s crashed", job_id)
        _fail(
            jobs,
            ledger,
            record,
            JobError(
                ErrorCode.INTERNAL_ERROR.value,
                f"internal error ({type(exc).__name__}); see worker logs",
            ),
            cfg,
            beat,
        )
        return

    charged = _capture(ledger, record, cfg)  # money first: a rerun finds no hold
    seconds = time.monotonic() - started
    beat.ending = True  # the end below releases the lease: a renewal may find it gone
    done = jobs.apply(
        job_id,
        lifecycle.succeed(result, record.billing, charged),
        also=_ending(record, seconds),
    )
    beat.released = done is not None and done.attempts == record.attempts  # in that end
    elapsed = seconds * 1000
    if done is None:
        metrics.job_finished(jobs.redis, record.operation, seconds, None)
        _canceled_after_work(jobs, objects, record, result, charged, cfg)
        log.info("job %s finished in %.0f ms but was canceled meanwhile", job_id, elapsed)
        return
    _notify(done, dispatcher(cfg))
    log.info("job %s succeeded in %.0f ms -> %s", job_id, elapsed, _written(result))


def _ending(
    record: JobRecord, seconds: float | None, error: JobError | None = None
) -> Callable[[Pipeline, JobRecord], None]:
    """A run's writes in the transaction that ends its job (no round trip for either): its
    metrics, and a finished run's lease release while the record names its attempt."""

    def writes(pipe: Pipeline, ended: JobRecord) -> None:
        if seconds is not None:
            metrics.add_run(pipe, record.operation, seconds, error.code if error else None)
        if error is None and ended.attempts == record.attempts:
            lease.release_in(pipe, record.id)

    return writes


def _canceled_after_work(
    jobs: JobStore,
    objects: ObjectStore,
    record: JobRecord,
    result: dict[str, Any],
    charged: int,
    cfg: Settings,
) -> None:
    """A cancel that landed while the outputs were being written: if the work was already
    paid for in full, the canceled job keeps its result (and says it was captured);
    otherwise (not charged, or charged the cancel's share) the outputs go, so a canceled job
    never leaves one it did not pay for."""
    keys = [v["output"] for v in result.get("variants", [])] + (
        [result["output"]] if "output" in result else []
    )
    if charged and charged >= _price(record, cfg):  # its own capture, not a cancel's share
        jobs.apply(record.id, lifecycle.keep_result(result))
    elif keys and _canceled(jobs, record.id):  # not a job another run ended: its outputs
        for key in keys:  # are these keys
            objects.delete(tenant_key(record.tenant, key))


def _canceled(jobs: JobStore, job_id: str) -> bool:
    current = jobs.get(job_id)
    return current is not None and current.status is JobStatus.CANCELED


def _written(result: dict[str, Any]) -> str:
    if "variants" in result:
        return ", ".join(v["output"] for v in result["variants"])
    return str(result.get("output", "(result only)"))
