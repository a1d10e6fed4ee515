"""The HTTP API as requests and replies, for both clients: what each call sends (`Request`),
how a reply is read (`parse`: an error reply raises `ApiError`), the job object
(`JobResult`), and the waits (429 retries, polling back-off). No transport here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from jobs.spec import JobSpec

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
SERVER_MAX_WAIT = 60  # the gateway holds `?wait=` at most this long
RETRIES_429 = 5


class ApiError(Exception):
    """An error reply (`{"error": {code, message}}`), or a job that ended failed/canceled."""

    def __init__(
        self, status: int | None, code: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.status, self.code, self.message, self.body = status, code, message, body or {}


@dataclass
class JobResult:
    """A job object from the API, with typed access to the fields callers use most."""

    id: str
    operation: str
    status: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    billing: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

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
        )

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
        default_timeout + wait,
    )  # the server holds the reply `wait` s


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
    if resp.status_code >= 400:
        try:
            body = resp.json()
            err = body["error"]
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


def client_args(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "headers": {"Authorization": f"Bearer {api_key}"},
    }
