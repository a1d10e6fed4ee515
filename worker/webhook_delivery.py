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
from worker.webhook_slots import tenant_slot, turn_delay
from worker.webhooks import Outcome, post, sign

log = logging.getLogger("imagefleet.webhooks")


JITTER = (0.5, 1.5)  # each retry waits its backoff times a factor drawn from this range


def retry_delay(cfg: Settings, attempt: int, jitter: float) -> float:
    """Seconds before the retry after `attempt` (0-based): exponential backoff."""
    return cfg.webhook_base_delay * 2**attempt * jitter


def signed_attempt(
    url: str, body: bytes, msg_id: str, secret: str, attempt: int, cfg: Settings
) -> tuple[Outcome, WebhookState, bool]:
    """One Standard Webhooks POST to a checked address (a job's end, a batch's end): what
    came back, the webhook's state after it, and whether it was the last attempt."""
    timestamp = int(time.time())
    try:
        host, ip, port = check_address(url, cfg.webhook_allow_loopback, cfg.webhook_allow_private)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body),
        }
        outcome = post(url, body, headers, ip, port, host, cfg.webhook_timeout)
        refused = False
    except Refused as exc:
        outcome, refused = Outcome(None, 0.0, f"refused: {exc}"), True
    last = outcome.ok or refused or attempt + 1 >= cfg.webhook_attempts
    if outcome.ok:
        return outcome, WebhookState.DELIVERED, True
    if refused:
        return outcome, WebhookState.REFUSED, True
    return outcome, WebhookState.FAILED if last else WebhookState.RETRYING, last


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
    with tenant_slot(jobs.redis, record.tenant, cfg) as free:
        if not free:  # the account's share of the pool is under way: a turn, not an attempt
            jobs.touch(job_id)  # its delivery is carried: the sweeper need not resend it
            dispatch.webhook(job_id, attempt, countdown=turn_delay(cfg))
            return
        outcome, state, last = signed_attempt(
            url, body, msg_id, account.webhook_secret, attempt, cfg
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
