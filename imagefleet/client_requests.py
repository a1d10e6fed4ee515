"""The HTTP API as requests and replies, for both clients: what each call sends (`Request`),
how a reply is read (`parse`: an error reply raises `ApiError`), the job object
(`JobResult`), the synchronous route's answer (`ImageResult`), and the waits (429 retries,
polling back-off). No transport here."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from billing.x402 import SettlementResponse, decode_payment_response, recorded_settlement
from jobs.spec import JobSpec

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
SERVER_MAX_WAIT = 60  # the gateway holds `?wait=` at most this long
RETRIES_429 = 5
SETTLE_PATIENCE = 60  # the gateway waits this long for a paid job's settlement
PAYMENT_RESPONSE, PAYMENT_RESPONSE_V2 = "X-PAYMENT-RESPONSE", "PAYMENT-RESPONSE"


class ApiError(Exception):
    """An error reply (`{"error": {code, message}}`), or a job that ended failed/canceled."""

    def __init__(
        self, status: int | None, code: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.status, self.code, self.message, self.body = status, code, message, body or {}


def settlement_of(resp: httpx.Response) -> SettlementResponse | None:
    """The decoded settlement header of a reply (`PAYMENT-RESPONSE` for a v2 payment,
    `X-PAYMENT-RESPONSE` for v1), if it has one."""
    header = resp.headers.get(PAYMENT_RESPONSE) or resp.headers.get(PAYMENT_RESPONSE_V2)
    return decode_payment_response(header) if header else None


@dataclass
class JobResult:
    """A job object from the API, with typed access to the fields callers use most.

    A job paid with x402 (a client with `payer_key=`) has `payment` (its state:
    `authorized`, then `settled` or `refused` once it was charged, `unsettled` if it was not)
    and, once settled or refused, `settlement`: the x402 settlement (`success`,
    `transaction`, `network`, `payer`, `error_reason`), from the reply's
    `X-PAYMENT-RESPONSE` or the job's record."""

    id: str
    operation: str
    status: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    billing: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    settlement: SettlementResponse | None = None

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> JobResult:
        return cls(
            job["id"],
            job["operation"],
            job["status"],
            job.get("result"),
            job.get("error"),
            job.get("billing") or {},
            job,
            recorded_settlement(job.get("payment")),
        )

    @classmethod
    def from_response(cls, resp: httpx.Response) -> JobResult:
        """The job of a reply (ApiError for an error reply), with its settlement header."""
        job = cls.from_dict(parse(resp))
        header = settlement_of(resp)
        return replace(job, settlement=header) if header is not None else job

    @property
    def payment(self) -> dict[str, Any] | None:
        """The x402 payment of a paid job (`state`, `transaction`, ...); None otherwise."""
        return self.raw.get("payment")

    @property
    def settling(self) -> bool:
        """Charged (succeeded, or failed by its own doing: docs/billing.md#endings) and paid
        with x402, its settlement still to come (the fleet's webhooks pool settles it):
        `wait` goes on until it is settled or refused."""
        charged = self.done and self.billing.get("state") == "captured"
        return charged and (self.payment or {}).get("state") == "authorized"

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def output(self) -> str | None:
        return (self.result or {}).get("output")

    def raise_for_error(self) -> JobResult:
        if self.status == "failed":
            err = self.error or {}
            raise ApiError(None, err.get("code", "UNKNOWN"), err.get("message", ""), self.raw)
        if self.status == "canceled":
            raise ApiError(None, "CANCELED", f"job {self.id} was canceled", self.raw)
        return self


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    timeout: float | None = None  # None: the client's default


@dataclass
class ImageResult:
    """The answer of `POST /v1/image/{op}` (`Client.image`): `envelope` is the reply's JSON
    (`job`, then `inline` base64 or a signed `outputUrl` with `format`, `width`, `height`,
    `bytes`; a facts operation's fields; or `{"job", "status": "running"}` when the job
    outlasted the fleet's sync timeout: `wait(result.job)`), `settlement` the x402
    settlement of a paid call."""

    envelope: dict[str, Any]
    settlement: SettlementResponse | None = None

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ImageResult:
        return cls(parse(resp), settlement_of(resp))

    @property
    def job(self) -> str:
        return str(self.envelope["job"])

    @property
    def running(self) -> bool:
        return self.envelope.get("status") == "running"

    @property
    def data(self) -> bytes | None:
        """The output's bytes when they came inline (else fetch `envelope["outputUrl"]`)."""
        inline = self.envelope.get("inline")
        return base64.b64decode(inline) if inline is not None else None


def image_request(op: str, fields: Mapping[str, Any], default_timeout: float) -> Request:
    """`POST /v1/image/{op}`; a `bytes` field goes inline (`{"inline": "<base64>"}`)."""
    body = {
        name: {"inline": base64.b64encode(value).decode()} if isinstance(value, bytes) else value
        for name, value in fields.items()
    }
    return Request(
        "POST",
        f"/v1/image/{quote(op)}",
        None,
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
        default_timeout + SERVER_MAX_WAIT + SETTLE_PATIENCE,  # the run, then the settlement
    )


def spec_body(spec: JobSpec | Mapping[str, Any]) -> bytes:
    if isinstance(spec, JobSpec):
        return msgspec.json.encode(spec)  # tagged with "operation" by the struct config
    return json.dumps(dict(spec)).encode()


def submit_request(
    spec: JobSpec | Mapping[str, Any],
    idempotency_key: str | None,
    wait: float,
    default_timeout: float,
) -> Request:
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    wait = max(0.0, min(wait, SERVER_MAX_WAIT))
    return Request(
        "POST",
        "/v1/jobs",
        {"wait": wait} if wait else None,
        spec_body(spec),
        headers,
        default_timeout + wait + (SETTLE_PATIENCE if wait else 0),
    )  # the server holds the reply `wait` s (and a paid job's settlement)


def batch_request(
    specs: list[JobSpec | Mapping[str, Any]],
    webhook_url: str | None,
    idempotency_key: str | None,
) -> Request:
    """`POST /v1/batches`: the specs in order (the reply answers each: its job or error)."""
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    jobs = b",".join(spec_body(spec) for spec in specs)
    extra = b',"webhook_url":' + json.dumps(webhook_url).encode() if webhook_url else b""
    return Request("POST", "/v1/batches", None, b'{"jobs":[' + jobs + b"]" + extra + b"}", headers)


def batch_path(batch_id: str) -> str:
    return f"/v1/batches/{quote(batch_id)}"


def object_path(key: str) -> str:
    return "/v1/objects/" + quote(key, safe="/")


def jobs_request(status: str | None, limit: int, cursor: Any) -> Request:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if cursor is not None:
        params["cursor"] = cursor
    return Request("GET", "/v1/jobs", params)


def read_upload(data: str | Path | bytes) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def retry_after(resp: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying a rate-limited request, or None to give up."""
    if resp.status_code != 429 or attempt >= RETRIES_429:
        return None
    try:
        return float(resp.headers.get("Retry-After", "")) or 0.5
    except ValueError:
        return 0.5 * (attempt + 1)


def parse(resp: httpx.Response, raw: bool = False) -> Any:
    """The reply's JSON (or bytes with `raw`); ApiError for an error reply. An x402 `402`
    challenge (`{"x402Version", "error", "accepts"}`) is `PAYMENT_REQUIRED` with the
    challenge's reason (`invalid_exact_evm_nonce_already_used: ...`) as its message."""
    if resp.status_code >= 400:
        try:
            body = resp.json()
            err = body["error"]
            if isinstance(err, str) and "x402Version" in body:
                code, message = "PAYMENT_REQUIRED", err
            else:
                code, message = err.get("code", "UNKNOWN"), err.get("message", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            body, code, message = {}, f"HTTP_{resp.status_code}", resp.text[:500]
        raise ApiError(resp.status_code, code, message, body)
    return resp.content if raw else resp.json()


def delays(poll: float) -> Iterator[float]:
    """Polling back-off: start at `poll`, grow by half each time, cap at 2 s."""
    delay = poll
    while True:
        yield delay
        delay = min(delay * 1.5, 2.0)


def client_args(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """httpx's arguments; without a key, no `Authorization` (an x402 payer has none)."""
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
    }
