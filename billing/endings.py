"""Who pays when a job ends without a result, declared once: the runner's failures and time
limits (money moved, then the record), the gateway's cancel (the record, whose charge
depends on the moment it lands, then the money) and the sweeper's orphaned holds (the money
an ended record says, when whoever ended it died first) all read it, and docs/billing.md's
table states it (tests/test_unit_endings.py holds them to each other).

A job the tenant made fail while it worked (it ran out of time, killed or hung its worker,
or its output key collided with the tenant's own objects) is charged its quote; a cancel
after the run started is charged the share of the quote its run took of the time limit, at
least the operation's 1 MP price; a job refused before any work (its input unreadable,
replaced, out of range) is free, as a refusal at submission is; and a failure of the
fleet's (a crash of ours, storage or a queue away) releases the hold. Money still moves
through the ledger's atomic capture, so a job is charged at most once, for at most its hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from billing.ledger import Ledger
from jobs.errors import ErrorCode
from jobs.records import BillingState, JobRecord, JobStatus, now

CAPTURED = BillingState.CAPTURED


class Fault(StrEnum):
    TENANT = "tenant"
    FLEET = "fleet"


@dataclass(frozen=True)
class Ending:
    fault: Fault
    charged: bool  # the quote is captured; else the hold goes back


WORK_FAILED = Ending(Fault.TENANT, charged=True)  # the tenant's job made the work fail
REFUSED = Ending(Fault.TENANT, charged=False)  # found before any work: free, as at submission
FLEETS = Ending(Fault.FLEET, charged=False)  # ours: the hold goes back

# Every code, so that a new one needs a decision. Codes no job ends with (request refusals)
# are refusals here too.
FAILURES: dict[ErrorCode, Ending] = {
    ErrorCode.TIMEOUT: WORK_FAILED,
    ErrorCode.WORKER_LOST: WORK_FAILED,
    ErrorCode.POISON_JOB: WORK_FAILED,
    ErrorCode.OUTPUT_CONFLICT: WORK_FAILED,
    ErrorCode.VALIDATION_ERROR: REFUSED,
    ErrorCode.PAYMENT_REQUIRED: REFUSED,
    ErrorCode.IMAGE_PARSE_FAILED: REFUSED,
    ErrorCode.IMAGE_TOO_LARGE: REFUSED,
    ErrorCode.CROP_OUT_OF_BOUNDS: REFUSED,
    ErrorCode.UNSUPPORTED_LANG: REFUSED,
    ErrorCode.HTML_TOO_LARGE: REFUSED,
    ErrorCode.PAGE_OUT_OF_RANGE: REFUSED,
    ErrorCode.INPUT_CHANGED: REFUSED,
    ErrorCode.UNAUTHORIZED: REFUSED,
    ErrorCode.NOT_FOUND: REFUSED,
    ErrorCode.IDEMPOTENCY_CONFLICT: REFUSED,
    ErrorCode.JOB_ENDED: REFUSED,
    ErrorCode.UPLOAD_URL_USED: REFUSED,
    ErrorCode.PAYLOAD_TOO_LARGE: REFUSED,
    ErrorCode.RATE_LIMITED: REFUSED,
    ErrorCode.HEADERS_TOO_LARGE: REFUSED,
    ErrorCode.INPUT_NOT_FOUND: FLEETS,  # tenants cannot delete objects: storage lost it
    ErrorCode.UNAVAILABLE: FLEETS,
    ErrorCode.INTERNAL_ERROR: FLEETS,
}


def failure_charge(code: str, quote: int) -> int:
    """What a job that failed with `code` owes: its quote, or 0 (a code this fleet does not
    know, say from a newer release, is taken as the fleet's)."""
    try:
        ending = FAILURES[ErrorCode(code)]
    except ValueError:
        ending = FLEETS
    return quote if ending.charged else 0


def cancel_charge(record: JobRecord, soft_seconds: float, one_mp_price: int) -> int:
    """What a cancel owes, from the record as the cancel finds it (its `finished_at` the
    cancel's moment, else now): nothing while queued; once running, quote x min(1, seconds
    run / the soft time limit), rounded up, at least the operation's 1 MP price and at most
    the quote."""
    quote = record.billing.quoted_micros
    if record.status is not JobStatus.RUNNING or record.started_at is None:
        return 0
    ran = max(0.0, ((record.finished_at or now()) - record.started_at).total_seconds())
    share = math.ceil(quote * min(1.0, ran / soft_seconds)) if soft_seconds > 0 else quote
    return min(quote, max(share, one_mp_price))


def move(ledger: Ledger, record: JobRecord, owed: int) -> int:
    """Capture what a job owes, or release its hold when it owes nothing. Returns what the
    ledger charged the job: an earlier capture's amount when the hold was gone (a run that
    captured just before a cancel landed), which the caller records."""
    if owed > 0:
        return ledger.capture(
            record.tenant, record.id, owed, record.operation, record.billing.megapixels or 0
        )
    ledger.release(record.tenant, record.id, record.operation)
    return ledger.captured(record.tenant, record.id)


def settle_ending(ledger: Ledger, record: JobRecord) -> int:
    """Move the money an ended job's record says it owes (see `move`)."""
    billing = record.billing
    return move(ledger, record, billing.charged_micros if billing.state is CAPTURED else 0)
