"""Job states and the job record: what `GET /v1/jobs/{id}` returns (plus the owner)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from jobs.errors import FleetError

if TYPE_CHECKING:  # the checker sees the base class; msgspec decodes the tagged union
    from jobs.spec import JobSpec as AnyJobSpec
else:
    from jobs.registry import AnyJobSpec


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class JobError(msgspec.Struct):
    code: str
    message: str


class BillingState(StrEnum):
    HELD = "held"  # at submission: the quote is held on the account
    CAPTURED = "captured"  # charged: a success, or an ending the tenant pays (billing/endings.py)
    RELEASED = "released"  # failed or canceled owing nothing: the hold went back


class JobBilling(msgspec.Struct):
    megapixels: float | None = None  # quoted from the input headers (None: flat price)
    quoted_micros: int = 0  # held at submission
    charged_micros: int = 0  # captured on success, or what a charged ending owed
    state: BillingState = BillingState.HELD


class WebhookState(StrEnum):
    PENDING = "pending"  # the job has not ended, or its first attempt is on its way
    RETRYING = "retrying"  # an attempt failed; the next one is scheduled
    DELIVERED = "delivered"  # the receiver answered 2xx
    REFUSED = "refused"  # the address is not allowed (checked again at each attempt)
    FAILED = "failed"  # every attempt failed

    @property
    def settled(self) -> bool:
        return self not in (WebhookState.PENDING, WebhookState.RETRYING)


class Delivery(msgspec.Struct):
    """One webhook attempt as the job shows it."""

    at: float  # unix time of the attempt
    attempt: int  # 1-based
    status: int | None  # the receiver's HTTP status, None when none answered
    latency_ms: float
    error: str | None


class Webhook(msgspec.Struct):
    url: str
    state: WebhookState = WebhookState.PENDING
    deliveries: list[Delivery] = msgspec.field(default_factory=list)


class PaymentState(StrEnum):
    AUTHORIZED = "authorized"  # verified at submission: the signed authorization is the hold
    SETTLED = "settled"  # the job was charged (it succeeded, or failed by its own doing) and
    # the transfer is on chain
    UNSETTLED = "unsettled"  # ended owing nothing: the authorization is never used
    REFUSED = "refused"  # the job was charged but the facilitator would not settle

    @property
    def open(self) -> bool:
        return self is PaymentState.AUTHORIZED


class Payment(msgspec.Struct):
    """An x402 payment (gateway/x402_api.py): the payer's signed transfer authorization
    stands for the hold; settling it is the capture, and only a charged job is settled."""

    network: str
    asset: str
    payer: str
    pay_to: str
    amount_micros: int
    nonce: str
    state: PaymentState = PaymentState.AUTHORIZED
    transaction: str | None = None  # the settlement's transaction hash
    error: str | None = None  # why the facilitator refused to settle


class InputFacts(msgspec.Struct):
    """An input as it was quoted: the worker refuses (INPUT_CHANGED) to run on anything else."""

    bytes: int | None
    etag: str | None = None
    header: tuple[str, int, int, int] | None = None  # format, width, height, frames read


# Record fields the API never shows: the owner, the message that owns the run, what was quoted,
# the batch (`GET /v1/batches/{id}` lists its own jobs), the x402 authorization to settle.
INTERNAL_FIELDS = ("tenant", "task_id", "inputs", "batch_id", "payment_header")


class JobRecord(msgspec.Struct, kw_only=True):
    id: str
    tenant: str
    operation: str
    status: JobStatus
    spec: AnyJobSpec
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: JobError | None = None
    billing: JobBilling = msgspec.field(default_factory=JobBilling)
    webhook: Webhook | None = None
    # The Celery task (message) whose run owns the job: a redelivered message carries the
    # same id and may run again; a duplicate message carries another and may not.
    task_id: str | None = None
    inputs: list[InputFacts] = msgspec.field(default_factory=list)  # in spec.sources() order
    batch_id: str | None = None  # the batch that admitted it (jobs/batches.py counts its end)
    payment: Payment | None = None  # paid with x402 instead of an account's balance
    payment_header: str | None = None  # the X-PAYMENT value that settles it

    def public(self) -> dict[str, Any]:
        """The job object of the API: the record without its owner and internals."""
        body = msgspec.to_builtins(self)
        for internal in INTERNAL_FIELDS:
            body.pop(internal, None)
        return body


def now() -> datetime:
    return datetime.now(UTC)


def job_age_seconds(job_id: str) -> float:
    """How long ago a job id was made (ids start with their creation time in ms)."""
    try:
        return now().timestamp() - int(job_id[4:16], 16) / 1000
    except ValueError:
        return float("inf")


def new_job_id() -> str:
    # Time-ordered prefix so ids sort by creation; random suffix so they cannot be guessed.
    return f"job_{int(now().timestamp() * 1000):012x}{secrets.token_hex(10)}"


def error_of(exc: FleetError) -> JobError:
    return JobError(code=exc.code.value, message=exc.message)
