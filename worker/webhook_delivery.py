"""One webhook attempt for an ended job, recorded on the job; retries are scheduled here."""

from __future__ import annotations

import logging
import random
import time

import msgspec

from billing.accounts import Accounts
from imagefleet.addresses import Refused, check_address
from imagefleet.dispatch import Dispatch
from imagefleet.settings import Settings
from jobs.lifecycle import record_delivery
from jobs.records import Delivery, WebhookState
from jobs.store import JobStore
from worker.webhooks import Outcome, post, sign

log = logging.getLogger("imagefleet.webhooks")


JITTER = (0.5, 1.5)  # each retry waits its backoff times a factor drawn from this range


def retry_delay(cfg: Settings, attempt: int, jitter: float) -> float:
    """Seconds before the retry after `attempt` (0-based): exponential backoff."""
    return cfg.webhook_base_delay * 2**attempt * jitter


def deliver(job_id: str, attempt: int, jobs: JobStore, cfg: Settings, dispatch: Dispatch) -> None:
    record = jobs.get(job_id)
    url = record.spec.webhook_url if record else None
    if record is None or url is None or not record.status.terminal:
        return
    account = Accounts(jobs.redis).get(record.tenant)
    if account is None:
        return
    body = msgspec.json.encode(record.public())
    msg_id = f"msg_{job_id}_{record.status.value}"  # the same id on every retry of one event
    timestamp = int(time.time())
    refused = False
    try:
        host, ip, port = check_address(url, cfg.webhook_allow_loopback, cfg.webhook_allow_private)
        outcome = post(
            url,
            body,
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(account.webhook_secret, msg_id, timestamp, body),
            },
            ip,
            port,
            host,
        )
    except Refused as exc:
        outcome, refused = Outcome(None, 0.0, f"refused: {exc}"), True
    last = outcome.ok or refused or attempt + 1 >= cfg.webhook_attempts
    state = (
        WebhookState.DELIVERED
        if outcome.ok
        else WebhookState.REFUSED
        if refused
        else WebhookState.FAILED
        if last
        else WebhookState.RETRYING
    )
    delivery = Delivery(
        at=time.time(),
        attempt=attempt + 1,
        status=outcome.status,
        latency_ms=round(outcome.latency_ms, 1),
        error=outcome.error,
    )
    jobs.apply(job_id, record_delivery(url, delivery, state))
    log.info(
        "webhook %s attempt %d -> %s (%s)",
        job_id,
        attempt + 1,
        state,
        outcome.status or outcome.error,
    )
    if not last:  # exponential backoff with jitter
        delay = retry_delay(cfg, attempt, random.uniform(*JITTER))
        dispatch.webhook(job_id, attempt + 1, countdown=delay)
