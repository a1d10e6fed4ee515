"""x402 payments as this fleet configures them: the requirements of a job (what a 402 asks
for and what a settlement presents to the facilitator), and settling a succeeded job's
authorization, which the gateway (for the synchronous route's answer) and the settlement
pool (for every other paid job) both call. One settler at a time per authorization; the
chain refuses a second use of one anyway. A settled or refused authorization leaves its
wallet's open total (billing/x402_wallet.py); a refused one's outputs are deleted and its
inline data dropped, since they were never paid for (the payer never saw them: the
gateway shows a payer's result only once settled)."""

from __future__ import annotations

import logging

from billing import x402_wallet as wallet
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
from storage import ObjectStore, tenant_key

log = logging.getLogger("imagefleet.payments")
SETTLING = "imagefleet:x402:settling:"  # + asset:payer:nonce: the one settler's claim


PAYER_PREFIX = "x402-"  # tenant ids are [A-Za-z0-9_-] (storage keys): `x402-<address>`


def tenant_of(payer: str) -> str:
    """The namespace a payer's jobs and outputs live in."""
    return f"{PAYER_PREFIX}{payer.lower()}"


def resource_url(cfg: Settings, path: str) -> str:
    """The absolute URL of a paid call (x402's `resource`), from FLEET_PUBLIC_URL."""
    return f"{cfg.public_url}{path}"


def settling_key(record: JobRecord) -> str:
    """The settler's claim on a job's authorization."""
    assert record.payment is not None
    payment = record.payment
    return SETTLING + wallet.claim_suffix(payment.asset, payment.payer, payment.nonce)


def _outputs(result: dict[str, object] | None) -> list[str]:
    result = result or {}
    variants = result.get("variants")
    found = [result, *(variants if isinstance(variants, list) else [])]
    return [str(o["output"]) for o in found if isinstance(o, dict) and "output" in o]


def delete_outputs(objects: ObjectStore, record: JobRecord) -> None:
    """A job's stored outputs gone (a refused settlement: never paid for, never handed over)."""
    for key in _outputs(record.result):
        objects.delete(tenant_key(record.tenant, key))


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
    jobs: JobStore, objects: ObjectStore, ledger: Ledger, cfg: Settings, job_id: str
) -> tuple[JobRecord | None, SettlementResponse | None]:
    """Settle a succeeded job's authorization if it still owes it: the record after, and the
    facilitator's answer (None when there was nothing to do or another settler is at it).
    FacilitatorError (the facilitator unreachable) is the caller's to retry."""
    record = jobs.get(job_id)
    if record is None or not owes_settlement(record) or record.payment_header is None:
        return record, None
    claim = settling_key(record)
    if not jobs.redis.set(claim, job_id, nx=True, ex=120):
        return record, None
    try:
        payment = decode_payment(record.payment_header)
        assert record.payment is not None and not isinstance(payment, Refusal)  # read before
        asked = required(
            cfg,
            record.operation,
            record.billing.quoted_micros,
            resource_url(cfg, f"/v1/jobs/{job_id}"),
        )
        with FacilitatorClient(cfg.x402_facilitator_url) as facilitator:
            answer = facilitator.settle(payment, asked)
        paid = record.payment
        if answer.success:
            ledger.settled(record.tenant, job_id, paid.amount_micros, answer.transaction)
            log.info("job %s settled: %s", job_id, answer.transaction)
            after = jobs.apply(job_id, settled(answer.transaction))
        else:
            reason = answer.error_reason or "refused"
            log.warning("job %s: the facilitator refused to settle (%s)", job_id, reason)
            after = jobs.apply(job_id, settlement_refused(reason))
            delete_outputs(objects, record)
        wallet.close(jobs.redis, paid.asset, paid.payer, paid.nonce)
        return after, answer
    finally:
        jobs.redis.delete(claim)
