"""Python client for the imagefleet HTTP API: `Client` (sync), `AsyncClient`, `verify_webhook`.

Both clients share request building (`_Request`) and response parsing (`_parse`); only the
transport and the sleeps differ. Typed per-operation methods live in `_Operations`, generic
over the return type, so one definition serves `JobResult` and `Awaitable[JobResult]`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from jobs.analysis import DominantColorJob, MetadataJob
from jobs.compose import CompositeJob, ContactSheetJob
from jobs.crop import CropJob
from jobs.formats import CompressJob, ConvertJob, ExifStripJob
from jobs.geometry import ExtendJob, ResizeJob, RotateJob, TrimJob
from jobs.ocr import OcrJob
from jobs.pipeline import PipelineJob
from jobs.render import FromHtmlJob
from jobs.spec import JobSpec
from jobs.tone import AdjustJob, BlurJob, GrayscaleJob, SharpenJob

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


class WebhookVerificationError(Exception):
    """A webhook delivery whose signature or timestamp does not check out."""


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
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    timeout: float | None = None  # None: the client's default


def _spec_body(spec: JobSpec | Mapping[str, Any]) -> bytes:
    if isinstance(spec, JobSpec):
        return msgspec.json.encode(spec)  # tagged with "operation" by the struct config
    return json.dumps(dict(spec)).encode()


def _submit_request(
    spec: JobSpec | Mapping[str, Any],
    idempotency_key: str | None,
    wait: float,
    default_timeout: float,
) -> _Request:
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    wait = max(0.0, min(wait, SERVER_MAX_WAIT))
    return _Request(
        "POST",
        "/v1/jobs",
        {"wait": wait} if wait else None,
        _spec_body(spec),
        headers,
        default_timeout + wait,
    )  # the server holds the reply `wait` s


def _object_path(key: str) -> str:
    return "/v1/objects/" + quote(key, safe="/")


def _jobs_request(status: str | None, limit: int, cursor: Any) -> _Request:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if cursor is not None:
        params["cursor"] = cursor
    return _Request("GET", "/v1/jobs", params)


def _read_upload(data: str | Path | bytes) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def _retry_after(resp: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying a rate-limited request, or None to give up."""
    if resp.status_code != 429 or attempt >= RETRIES_429:
        return None
    try:
        return float(resp.headers.get("Retry-After", "")) or 0.5
    except ValueError:
        return 0.5 * (attempt + 1)


def _parse(resp: httpx.Response, raw: bool = False) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            err = body["error"]
            code, message = err.get("code", "UNKNOWN"), err.get("message", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            body, code, message = {}, f"HTTP_{resp.status_code}", resp.text[:500]
        raise ApiError(resp.status_code, code, message, body)
    return resp.content if raw else resp.json()


def _delays(poll: float) -> Iterator[float]:
    """Polling back-off: start at `poll`, grow by half each time, cap at 2 s."""
    delay = poll
    while True:
        yield delay
        delay = min(delay * 1.5, 2.0)


R = TypeVar("R")


class _Operations(Generic[R]):
    """One typed method per operation of `jobs.registry.OPERATIONS` ("-" becomes "_")."""

    def _run(self, spec: JobSpec, wait: bool) -> R:
        raise NotImplementedError

    def crop(self, job: CropJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def resize(self, job: ResizeJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def convert(self, job: ConvertJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def compress(self, job: CompressJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def rotate(self, job: RotateJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def blur(self, job: BlurJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def sharpen(self, job: SharpenJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def grayscale(self, job: GrayscaleJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def exif_strip(self, job: ExifStripJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def composite(self, job: CompositeJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def contact_sheet(self, job: ContactSheetJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def adjust(self, job: AdjustJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def trim(self, job: TrimJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def extend(self, job: ExtendJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def metadata(self, job: MetadataJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def dominant_color(self, job: DominantColorJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def pipeline(self, job: PipelineJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def ocr(self, job: OcrJob, wait: bool = True) -> R:
        return self._run(job, wait)

    def from_html(self, job: FromHtmlJob, wait: bool = True) -> R:
        return self._run(job, wait)


def _client_args(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "headers": {"Authorization": f"Bearer {api_key}"},
    }


class Client(_Operations[JobResult]):
    """Blocking client. `with Client(url, key) as fleet: fleet.crop(CropJob(...))`."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 60) -> None:
        self.timeout = timeout
        self._http = httpx.Client(**_client_args(base_url, api_key, timeout))

    def _send(self, req: _Request, raw: bool = False) -> Any:
        for attempt in range(RETRIES_429 + 1):
            resp = self._http.request(
                req.method,
                req.path,
                params=req.params,
                content=req.content,
                headers=req.headers,
                timeout=req.timeout or self.timeout,
            )
            delay = _retry_after(resp, attempt)
            if delay is None:
                break
            time.sleep(delay)
        return _parse(resp, raw)

    def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None, wait: float = 0
    ) -> JobResult:
        """Enqueue a job; with `wait`, the server holds the reply up to that many seconds."""
        return JobResult.from_dict(
            self._send(_submit_request(spec, idempotency_key, wait, self.timeout))
        )

    def get(self, job_id: str) -> JobResult:
        return JobResult.from_dict(self._send(_Request("GET", f"/v1/jobs/{quote(job_id)}")))

    def wait(self, job_id: str, timeout: float = 120, poll: float = 0.1) -> JobResult:
        """Poll until the job ends; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for delay in _delays(poll):
            job = self.get(job_id)
            if job.done:
                return job
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def cancel(self, job_id: str) -> JobResult:
        return JobResult.from_dict(self._send(_Request("DELETE", f"/v1/jobs/{quote(job_id)}")))

    def jobs(self, status: str | None = None, limit: int = 20) -> Iterator[JobResult]:
        """Every job of the account, newest first, fetched `limit` per page."""
        cursor = None
        while True:
            page = self._send(_jobs_request(status, limit, cursor))
            yield from (JobResult.from_dict(job) for job in page["jobs"])
            cursor = page.get("next_cursor")
            if cursor is None or not page["jobs"]:
                return

    def upload(self, data: str | Path | bytes, key: str) -> dict[str, Any]:
        return self._send(_Request("PUT", _object_path(key), content=_read_upload(data)))

    def download(self, key: str, path: str | Path | None = None) -> bytes:
        data = self._send(_Request("GET", _object_path(key)), raw=True)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def usage(self, **params: Any) -> dict[str, Any]:
        """Balance, holds and charges; `usage(**{"from": ..., "to": ...})` bounds the window."""
        return self._send(_Request("GET", "/v1/usage", params or None))

    def _run(self, spec: JobSpec, wait: bool) -> JobResult:
        job = self.submit(spec, wait=SERVER_MAX_WAIT if wait else 0)
        return self.wait(job.id) if wait and not job.done else job

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Operations[Awaitable[JobResult]]):
    """The same API as `Client`, as coroutines (and `jobs()` as an async iterator)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 60) -> None:
        self.timeout = timeout
        self._http = httpx.AsyncClient(**_client_args(base_url, api_key, timeout))

    async def _send(self, req: _Request, raw: bool = False) -> Any:
        for attempt in range(RETRIES_429 + 1):
            resp = await self._http.request(
                req.method,
                req.path,
                params=req.params,
                content=req.content,
                headers=req.headers,
                timeout=req.timeout or self.timeout,
            )
            delay = _retry_after(resp, attempt)
            if delay is None:
                break
            await asyncio.sleep(delay)
        return _parse(resp, raw)

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None, wait: float = 0
    ) -> JobResult:
        return JobResult.from_dict(
            await self._send(_submit_request(spec, idempotency_key, wait, self.timeout))
        )

    async def get(self, job_id: str) -> JobResult:
        return JobResult.from_dict(await self._send(_Request("GET", f"/v1/jobs/{quote(job_id)}")))

    async def wait(self, job_id: str, timeout: float = 120, poll: float = 0.1) -> JobResult:
        deadline = time.monotonic() + timeout
        for delay in _delays(poll):
            job = await self.get(job_id)
            if job.done:
                return job
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def cancel(self, job_id: str) -> JobResult:
        return JobResult.from_dict(
            await self._send(_Request("DELETE", f"/v1/jobs/{quote(job_id)}"))
        )

    async def jobs(self, status: str | None = None, limit: int = 20) -> AsyncIterator[JobResult]:
        cursor = None
        while True:
            page = await self._send(_jobs_request(status, limit, cursor))
            for job in page["jobs"]:
                yield JobResult.from_dict(job)
            cursor = page.get("next_cursor")
            if cursor is None or not page["jobs"]:
                return

    async def upload(self, data: str | Path | bytes, key: str) -> dict[str, Any]:
        return await self._send(_Request("PUT", _object_path(key), content=_read_upload(data)))

    async def download(self, key: str, path: str | Path | None = None) -> bytes:
        data = await self._send(_Request("GET", _object_path(key)), raw=True)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def usage(self, **params: Any) -> dict[str, Any]:
        return await self._send(_Request("GET", "/v1/usage", params or None))

    async def _run(self, spec: JobSpec, wait: bool) -> JobResult:
        job = await self.submit(spec, wait=SERVER_MAX_WAIT if wait else 0)
        return await self.wait(job.id) if wait and not job.done else job

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def verify_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, tolerance: int = 300
) -> dict[str, Any]:
    """Check a Standard Webhooks delivery and return its JSON payload.

    Signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed by the
    base64 part of `whsec_...`; `webhook-signature` may list several `v1,<b64>` (key rotation).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature header")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs(time.time() - sent_at) > tolerance:  # replay protection, both directions
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not whsec_<base64>") from None
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    )
    for candidate in signatures.split():
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            try:
                return json.loads(body)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no matching v1 signature")
