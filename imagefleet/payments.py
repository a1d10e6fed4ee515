"""x402 payments as this fleet configures them: the requirements of a job (what a 402 asks
for and what a settlement presents to the facilitator), and settling a succeeded job's
authorization, which the gateway (for the synchronous route's answer) and the webhooks pool
(for every other paid job) both call. One settler at a time per job; the chain refuses a
second use of an authorization anyway."""

from __future__ import annotations

import logging

from billing.ledger import Ledger
from billing.x402 import (
    PaymentRequirements,
    Refusal,
    SettlementResponse,
    decode_payment,
    requirements,
)
from billing.x402_facilitator_client import FacilitatorClient
from imagefleet.dispatch import time_limits
from imagefleet.settings import Settings
from jobs.lifecycle import owes_settlement, settled, settlement_refused
from jobs.records import JobRecord
from jobs.store import JobStore

log = logging.getLogger("imagefleet.payments")
SETTLING = "imagefleet:x402:settling:"  # + job id: the one settler's claim


PAYER_PREFIX = "x402-"  # tenant ids are [A-Za-z0-9_-] (storage keys): `x402-<address>`


def tenant_of(payer: str) -> str:
    """The namespace a payer's jobs and outputs live in."""
    return f"{PAYER_PREFIX}{payer.lower()}"


def required(cfg: Settings, operation: str, amount: int, resource: str) -> PaymentRequirements:
    """What a job of `operation` costing `amount` micros asks of a payer. The authorization
    must outlive the job's hard time limit (plus the time to settle)."""
    _, hard = time_limits(operation, cfg)
    return requirements(
        amount=max(amount, 1),
        pay_to=cfg.x402_pay_to,
        asset=cfg.x402_asset,
        network=cfg.x402_network,
        resource=resource,
        description=f"imagefleet {operation}",
        max_timeout_seconds=hard + 60,
        token_name=cfg.x402_token_name,
        token_version=cfg.x402_token_version,
    )


def settle_job(
    jobs: JobStore, ledger: Ledger, cfg: Settings, job_id: str
) -> tuple[JobRecord | None, SettlementResponse | None]:
    """Settle a succeeded job's authorization if it still owes it: the record after, and the
    facilitator's answer (None when there was nothing to do or another settler is at it).
    FacilitatorError (the facilitator unreachable) is the caller's to retry."""
    record = jobs.get(job_id)
    if record is None or not owes_settlement(record) or record.payment_header is None:
        return record, None
    if not jobs.redis.set(SETTLING + job_id, "1", nx=True, ex=120):
        return record, None
    try:
        payment = decode_payment(record.payment_header)
        assert record.payment is not None and not isinstance(payment, Refusal)  # read before
        asked = required(cfg, record.operation, record.billing.quoted_micros, f"/v1/jobs/{job_id}")
        with FacilitatorClient(cfg.x402_facilitator_url) as facilitator:
            answer = facilitator.settle(payment, asked)
        if answer.success:
            ledger.settled(record.tenant, job_id, record.payment.amount_micros, answer.transaction)
            log.info("job %s settled: %s", job_id, answer.transaction)
            return jobs.apply(job_id, settled(answer.transaction)), answer
        reason = answer.error_reason or "refused"
        log.warning("job %s: the facilitator refused to settle (%s)", job_id, reason)
        return jobs.apply(job_id, settlement_refused(reason)), answer
    finally:
        jobs.redis.delete(SETTLING + job_id)
