"""A batch's one webhook: sent when its last job ended (the transaction that ended it
queued this task: jobs/batches.py), signed like a job's (worker/webhooks.py), retried with
the same backoff (worker/webhook_delivery.py); its state is kept on the batch."""

from __future__ import annotations

import logging
import random

import msgspec
import redis

from billing.accounts import Accounts
from imagefleet.dispatch import app
from imagefleet.settings import Settings
from jobs import batches
from jobs.pools import Pool
from worker.webhook_delivery import JITTER, retry_delay, signed_attempt
from worker.webhook_slots import tenant_slot, turn_delay

log = logging.getLogger("imagefleet.webhooks")


def deliver_batch(batch_id: str, attempt: int, client: redis.Redis, cfg: Settings) -> None:
    batch = batches.load(client, batch_id)
    if batch is None or batch.webhook_url is None or not batch.done:
        return
    account = Accounts(client).get(batch.tenant)
    if account is None:
        return
    url = batch.webhook_url
    body = msgspec.json.encode({"type": "batch.done", "batch": batch.public()})
    msg_id = f"msg_{batch_id}_done"  # the same id on every retry
    with tenant_slot(client, batch.tenant, cfg) as free:
        if not free:  # the account's share of the pool is under way: a turn, not an attempt
            _send(batch_id, attempt, turn_delay(cfg))
            return
        _, state, last = signed_attempt(url, body, msg_id, account.webhook_secret, attempt, cfg)
    batches.note_webhook(client, batch_id, state.value)
    log.info("batch webhook %s attempt %d -> %s", batch_id, attempt + 1, state)
    if not last:
        _send(batch_id, attempt + 1, retry_delay(cfg, attempt, random.uniform(*JITTER)))


def _send(batch_id: str, attempt: int, countdown: float) -> None:
    app.send_task(
        batches.DELIVER_BATCH_WEBHOOK,
        args=[batch_id, attempt],
        queue=Pool.WEBHOOKS,
        countdown=countdown,
    )
