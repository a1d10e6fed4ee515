"""The JSON bodies the gateway answers with, as structs. The routes that build them encode
these, and the OpenAPI document (gateway/openapi.py) is generated from them, so the two
cannot drift apart. A job is `jobs.records.JobRecord` without its internal fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from jobs.errors import ErrorCode
from jobs.pools import Pool
from jobs.records import JobRecord


class ErrorBody(msgspec.Struct):
    """Some codes carry more fields (402: `price_micros`, `available_micros`, ...)."""

    code: ErrorCode
    message: str


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody
    job: str | UnsetType = UNSET  # `POST /v1/image/{op}`: the job that failed


class JobList(msgspec.Struct):
    jobs: list[JobRecord]
    next_cursor: str | None  # `?cursor=` of the next page; null on the last


class Redelivery(msgspec.Struct):
    job: str
    webhook: Literal["queued"]
    redeliveries_left: int  # of FLEET_WEBHOOK_REDELIVERIES for this job


class SyncOutput(msgspec.Struct, rename="camel"):
    """`POST /v1/image/{op}` once its job succeeded: the output image (inline up to the
    inline limit, else a signed URL), or, for operations that only report facts (metadata,
    dominant-color, ocr), the job's result fields beside `job`."""

    job: str
    output: str | UnsetType = UNSET
    format: str | UnsetType = UNSET
    content_type: str | UnsetType = UNSET
    bytes: int | UnsetType = UNSET
    width: int | UnsetType = UNSET
    height: int | UnsetType = UNSET
    inline: str | UnsetType = UNSET  # base64
    output_url: str | UnsetType = UNSET
    expires_at: datetime | UnsetType = UNSET


class SyncRunning(msgspec.Struct):
    job: str
    status: Literal["running"]


class Upload(msgspec.Struct, rename="camel"):
    input_key: str
    upload_url: str
    expires_at: datetime
    max_bytes: int


class Validated(msgspec.Struct):
    """`POST /v1/jobs/validate`: the spec passed the checks that read no input."""

    valid: bool
    operation: str


class StoredObject(msgspec.Struct):
    key: str
    bytes: int
    url: str


class SignedUpload(msgspec.Struct):
    bytes: int


class Charge(msgspec.Struct):
    jobs: int
    megapixels: float
    amount_micros: int


class OpenHold(msgspec.Struct):
    job: str
    amount_micros: int


class Usage(msgspec.Struct):
    account: str
    since: float = msgspec.field(name="from")  # unix seconds
    until: float = msgspec.field(name="to")
    balance_micros: int
    held_micros: int
    available_micros: int
    open_holds: list[OpenHold]
    charges: dict[str, Charge]  # by operation
    charged_micros: int
    credited_micros: int


class Price(msgspec.Struct):
    kind: Literal["per_megapixel", "flat"]
    per_mp_micros: int | UnsetType = UNSET
    flat_micros: int | UnsetType = UNSET
    # A flat read that decodes: flat up to this many megapixels read, then over_per_mp_micros
    # for each one over it (docs/billing.md).
    flat_up_to_megapixels: float | UnsetType = UNSET
    over_per_mp_micros: int | UnsetType = UNSET


class OperationInfo(msgspec.Struct):
    name: str
    queue: Pool
    price: Price
    schema: dict[str, Any]  # the JSON schema of the operation's job spec


class Operations(msgspec.Struct):
    operations: list[OperationInfo]


class Health(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    redis: str | UnsetType = UNSET  # why, when unavailable


class Checks(msgspec.Struct):
    redis: bool | str  # true, or why not
    storage: bool | str
    pools: dict[str, int]  # consumers per queue


class Readiness(msgspec.Struct):
    ready: bool
    checks: Checks


class BatchItem(msgspec.Struct, omit_defaults=True):
    """One item of a batch, in the order sent: its job, or why it was not admitted (its
    path prefixed `$.jobs[i]`)."""

    job: str | UnsetType = UNSET
    error: ErrorBody | UnsetType = UNSET


class BatchAccepted(msgspec.Struct):
    id: str
    admitted: int
    rejected: int
    items: list[BatchItem]


class BatchCounts(msgspec.Struct):
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class BatchWebhook(msgspec.Struct):
    url: str
    state: Literal["pending", "retrying", "delivered", "refused", "failed"]


class Batch(msgspec.Struct):
    id: str
    created_at: datetime
    total: int  # items sent
    admitted: int  # jobs made
    rejected: int  # items refused
    counts: BatchCounts  # the batch's jobs by state
    done: bool  # every job of the batch ended
    ended_at: datetime | None
    webhook: BatchWebhook | UnsetType = UNSET  # sent once, when the batch is done
