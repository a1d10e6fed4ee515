"""The `payments` pool settles succeeded jobs' x402 payments (imagefleet/payments.py): a
facilitator out of reach is retried with the webhooks' backoff; after the last attempt the
sweeper sends the job again later, since the job still owes its settlement."""

from __future__ import annotations

import logging
import random

from billing.ledger import Ledger
from billing.x402_facilitator_client import FacilitatorError
from imagefleet.dispatch import Dispatch
from imagefleet.payments import settle_job
from imagefleet.settings import Settings
from jobs.store import JobStore
from storage import ObjectStore
from worker.webhook_delivery import JITTER, retry_delay

log = logging.getLogger("imagefleet.worker")


def settle(
    job_id: str,
    attempt: int,
    jobs: JobStore,
    objects: ObjectStore,
    ledger: Ledger,
    cfg: Settings,
    dispatch: Dispatch,
) -> None:
    try:
        settle_job(jobs, objects, ledger, cfg, job_id)
    except FacilitatorError as exc:
        if attempt + 1 >= cfg.webhook_attempts:
            log.warning(
                "job %s: settlement attempt %d failed (%s); the sweeper retries",
                job_id,
                attempt + 1,
                exc,
            )
            return
        delay = retry_delay(cfg, attempt, random.uniform(*JITTER))
        log.warning("job %s: settlement failed (%s); retrying in %.1f s", job_id, exc, delay)
        dispatch.settle(job_id, attempt + 1, countdown=delay)
