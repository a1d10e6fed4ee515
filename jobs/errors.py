"""Every error code the fleet returns, with its HTTP status, in one table.

Gateway responses and failed job records both carry `{"code": ..., "message": ...}`;
a job's error code is never turned into a 500.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    JOB_ENDED = "JOB_ENDED"
    UPLOAD_URL_USED = "UPLOAD_URL_USED"  # a signed upload URL takes one PUT
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    IMAGE_PARSE_FAILED = "IMAGE_PARSE_FAILED"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    CROP_OUT_OF_BOUNDS = "CROP_OUT_OF_BOUNDS"
    UNSUPPORTED_LANG = "UNSUPPORTED_LANG"
    HTML_TOO_LARGE = "HTML_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"  # request headers over the gateway's limit
    UNAVAILABLE = "UNAVAILABLE"
    # Job-only codes (a job ends `failed` with these; no request returns them).
    INPUT_NOT_FOUND = "INPUT_NOT_FOUND"
    INPUT_CHANGED = "INPUT_CHANGED"  # the input object was replaced after it was quoted
    PAGE_OUT_OF_RANGE = "PAGE_OUT_OF_RANGE"
    TIMEOUT = "TIMEOUT"
    WORKER_LOST = "WORKER_LOST"
    POISON_JOB = "POISON_JOB"  # the job itself killed or hung its worker, twice
    OUTPUT_CONFLICT = "OUTPUT_CONFLICT"  # an output key that is a folder (or inside a file)
    INTERNAL_ERROR = "INTERNAL_ERROR"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.PAYMENT_REQUIRED: 402,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.JOB_ENDED: 409,
    ErrorCode.UPLOAD_URL_USED: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.IMAGE_PARSE_FAILED: 422,
    ErrorCode.IMAGE_TOO_LARGE: 422,
    ErrorCode.CROP_OUT_OF_BOUNDS: 422,
    ErrorCode.UNSUPPORTED_LANG: 422,
    ErrorCode.HTML_TOO_LARGE: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INPUT_NOT_FOUND: 422,
    ErrorCode.INPUT_CHANGED: 422,
    ErrorCode.PAGE_OUT_OF_RANGE: 422,
    ErrorCode.TIMEOUT: 422,
    ErrorCode.WORKER_LOST: 422,
    ErrorCode.POISON_JOB: 422,
    ErrorCode.OUTPUT_CONFLICT: 422,
    ErrorCode.INTERNAL_ERROR: 422,
}


class FleetError(Exception):
    """An expected failure with a documented code; safe to show to the caller."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}  # extra fields of the error body (402: price, balance)
        self.headers = headers or {}  # e.g. Retry-After

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code.value, "message": self.message, **self.details}
