"""The sweeper: finds work the fleet still owes that no message carries any more, and sends
it again. Job records are the source of truth, the broker is not: a message can be lost
when Redis restarts between a consumer's pop and its bookkeeping, when a worker's main
process dies, or when a worker finished a job while Redis was away and could not enqueue its
webhook. Sending twice is safe: the runner drops a copy while a live run owns the job,
terminal states are never left, and money moves once per job.

A running job whose worker died is found by its lease (worker/lease.py): each pass first
resends every running job whose lease expired, so it runs again within FLEET_LEASE_SECONDS
plus a pass, whatever its hard limit, instead of waiting FLEET_REQUEUE_AFTER_SECONDS.

A queued job parked for its tenant's fair share (jobs/fairshare.py) carries no message by
design: it is left alone while its tenant holds slots in the pool (one of their ends feeds
it), and each pass recounts the shares and feeds the backlogs, so it is never stranded.

Runs as `imagefleet sweeper` (one per fleet is enough; two are harmless).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from billing.accounts import Accounts
from billing.endings import settle_ending
from billing.ledger import Ledger
from imagefleet.dispatch import Dispatch, dispatcher
from imagefleet.redis_conn import connect
from imagefleet.settings import Settings
from jobs import fairshare
from jobs.lifecycle import owes_settlement, owes_work
from jobs.pools import JOB_POOLS
from jobs.records import JobRecord, JobStatus, WebhookState, job_age_seconds, now
from jobs.store import ACTIVE, JobStore
from worker import lease
from worker.runner import overdue
from worker.webhook_delivery import JITTER, retry_delay

log = logging.getLogger("imagefleet.sweeper")


@dataclass
class Swept:
    requeued: int = 0
    leases: int = 0  # of which running jobs whose lease expired
    webhooks: int = 0
    holds_released: int = 0
    fed: int = 0  # parked jobs sent on by the fair share's recount

    def __bool__(self) -> bool:
        return bool(self.requeued or self.webhooks or self.holds_released or self.fed)


def _resend_expired_leases(jobs: JobStore, dispatch: Dispatch, swept: Swept) -> None:
    """A running job whose lease expired lost its run (the process, container or machine
    died): send it again now. The copy takes the job because the lease is gone; if it is
    lost too, the idle pass below sends another once the job has been idle long enough."""
    for job_id in lease.expired(jobs.redis):
        record = jobs.get(job_id)
        if record is None or record.status is not JobStatus.RUNNING:
            lease.forget(jobs.redis, job_id)  # ended without releasing (killed at its limit)
        elif not overdue(record, jobs.redis):
            continue  # renewed after all: the index runs on the renewer's clock
        else:
            log.warning(
                "job %s running with an expired lease (attempt %d): its worker is"
                " gone; sending it again",
                job_id,
                record.attempts,
            )
            dispatch.job(job_id, record.operation)
            jobs.touch(job_id)  # the idle pass waits FLEET_REQUEUE_AFTER_SECONDS from now
            lease.forget(jobs.redis, job_id)  # the copy's lease takes its place
            swept.requeued += 1
            swept.leases += 1


def _webhook_overdue(record: JobRecord, cfg: Settings) -> bool:
    """Pending with nobody delivering it, or retrying past the latest its retry was due."""
    assert record.webhook is not None
    deliveries = record.webhook.deliveries
    if record.webhook.state is WebhookState.PENDING or not deliveries:
        return True
    latest_retry = retry_delay(cfg, len(deliveries) - 1, JITTER[1])
    return time.time() > deliveries[-1].at + latest_retry + cfg.requeue_after_seconds


def _sweep_job(
    job_id: str, jobs: JobStore, dispatch: Dispatch, cfg: Settings, swept: Swept
) -> None:
    record = jobs.get(job_id)
    if record is None or not owes_work(record):
        jobs.forget(job_id)  # expired, or settled by an update that raced this one
        return
    if record.status is JobStatus.QUEUED and fairshare.waits_its_turn(jobs.redis, record):
        jobs.touch(job_id)  # parked while its tenant runs its share: one of their ends feeds it
    elif record.status is JobStatus.QUEUED or (
        record.status is JobStatus.RUNNING and overdue(record, jobs.redis)
    ):
        idle = (now() - record.updated_at).total_seconds()
        log.warning(
            "job %s %s for %.0f s with no run; sending it again", job_id, record.status.value, idle
        )
        dispatch.job(job_id, record.operation)
        jobs.touch(job_id)
        swept.requeued += 1
    elif owes_settlement(record):
        log.warning("job %s owes its x402 settlement; sending it again", job_id)
        dispatch.settle(job_id)
        jobs.touch(job_id)
        swept.webhooks += 1
    elif record.webhook is not None and record.status.terminal and _webhook_overdue(record, cfg):
        log.warning(
            "job %s webhook %s with no delivery on its way; sending it again",
            job_id,
            record.webhook.state.value,
        )
        dispatch.webhook(job_id, len(record.webhook.deliveries))
        jobs.touch(job_id)
        swept.webhooks += 1


def _tidy_shares(jobs: JobStore, swept: Swept) -> None:
    """Each job pool's fair share: drop the slots of jobs that ended unseen (a run lost
    between taking its slot and starting), recount, and feed the backlogs (jobs/fairshare.py)."""
    for pool in JOB_POOLS:
        held = fairshare.slots(jobs.redis, pool.value)
        ended = [job_id for job_id in held if _ended(jobs, job_id)]
        if ended:
            log.warning("fair share: %d slot(s) of ended jobs in %s dropped", len(ended), pool)
        swept.fed += fairshare.tidy(jobs.redis, pool.value, ended, ACTIVE)


def _ended(jobs: JobStore, job_id: str) -> bool:
    record = jobs.get(job_id)
    return record is None or record.status.terminal


def _release_orphan_holds(
    jobs: JobStore, ledger: Ledger, accounts: Accounts, cfg: Settings, swept: Swept
) -> None:
    """A hold whose job was never recorded (the gateway lost Redis mid-admission) goes back
    to the account; one whose job failed or was canceled while whoever ended it died before
    moving the money is captured or released as the ended record says (billing/endings.py)."""
    for account in accounts.names():
        for job_id in ledger.open_holds(account):
            if job_age_seconds(job_id) < cfg.requeue_after_seconds:
                continue  # its admission or run may still be under way
            record = jobs.get(job_id)
            if record is None:
                released = ledger.release(account, job_id, "")
                log.warning("released an orphaned hold of %d for job %s", released, job_id)
            elif record.status in (JobStatus.FAILED, JobStatus.CANCELED):
                charged = settle_ending(ledger, record)
                log.warning(
                    "settled the orphaned hold of job %s (%s): charged %d",
                    job_id,
                    record.status.value,
                    charged,
                )
            else:
                continue
            swept.holds_released += 1


def sweep(
    jobs: JobStore, ledger: Ledger, accounts: Accounts, cfg: Settings, dispatch: Dispatch
) -> Swept:
    """One pass over expired leases, then jobs idle for at least FLEET_REQUEUE_AFTER_SECONDS,
    then holds."""
    swept = Swept()
    _resend_expired_leases(jobs, dispatch, swept)
    for job_id in jobs.idle(cfg.requeue_after_seconds):
        _sweep_job(job_id, jobs, dispatch, cfg, swept)
    _release_orphan_holds(jobs, ledger, accounts, cfg, swept)
    _tidy_shares(jobs, swept)
    return swept


def run_forever(cfg: Settings) -> None:
    client = connect(cfg.redis_url)
    jobs, ledger = JobStore(client, cfg.job_ttl_seconds), Ledger(client)
    accounts, dispatch = Accounts(client), dispatcher(cfg)
    log.info(
        "sweeper: every %g s, expired leases (%g s) and jobs idle for %g s are checked",
        cfg.sweep_interval,
        cfg.lease_seconds,
        cfg.requeue_after_seconds,
    )
    while True:
        try:
            swept = sweep(jobs, ledger, accounts, cfg, dispatch)
            if swept:
                log.info(
                    "sweep: %d job(s) sent again (%d with an expired lease), %d webhook(s),"
                    " %d hold(s) released, %d parked job(s) fed",
                    swept.requeued,
                    swept.leases,
                    swept.webhooks,
                    swept.holds_released,
                    swept.fed,
                )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("sweep skipped: redis unavailable (%s)", exc)
        except Exception:  # a bug here must not stop the next pass
            log.exception("sweep failed")
        time.sleep(cfg.sweep_interval)
