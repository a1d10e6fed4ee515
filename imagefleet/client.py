"""Python client for the imagefleet HTTP API: `Client` (sync), `AsyncClient`, `verify_webhook`.

Both clients share request building and response parsing (imagefleet/client_requests.py);
only the transport and the sleeps differ. `run(job)` takes any spec (`fleet.run(CropJob(...))`);
each operation also has a named method (`fleet.crop(CropJob(...))`), made from the registry
(imagefleet/client_operations.py); `image(op, **fields)` is the synchronous route.

Paying per call with x402 instead of an API key (docs/payments.md): give `payer_key=` (an
EVM private key, hex) and no `api_key`. A `402` challenge is then answered once, signed
with that key, and the paid job's `JobResult.settlement` (or `ImageResult.settlement`) is
the decoded `X-PAYMENT-RESPONSE`. A payer's inputs travel inline, and its outputs come
inline from `image()` or as `result["output_url"]` (signed) once the job is settled:

    with Client("http://127.0.0.1:8080", payer_key=key) as fleet:
        answer = fleet.image("resize", file=Path("photo.jpg").read_bytes(), width=400)
        answer.data, answer.settlement.transaction
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from imagefleet.client_operations import Operations
from imagefleet.client_requests import (
    RETRIES_429,
    SERVER_MAX_WAIT,
    TERMINAL,
    ApiError,
    ImageResult,
    JobResult,
    Request,
    batch_path,
    batch_request,
    client_args,
    delays,
    image_request,
    jobs_request,
    object_path,
    parse,
    read_upload,
    retry_after,
    submit_request,
)
from imagefleet.client_webhooks import WebhookVerificationError, verify_webhook
from imagefleet.client_x402 import PayerKeyError, challenge_of, paid, payer_address
from jobs.spec import JobSpec

__all__ = [
    "SERVER_MAX_WAIT",
    "TERMINAL",
    "ApiError",
    "AsyncClient",
    "Client",
    "ImageResult",
    "JobResult",
    "PayerKeyError",
    "WebhookVerificationError",
    "verify_webhook",
]


def _payer(api_key: str | None, payer_key: str | None) -> str | None:
    """The payer's address (checking the key), None without a payer key."""
    if payer_key is None:
        return None
    if api_key:
        raise ValueError("give an api_key or a payer_key: a request with a key is never paid")
    return payer_address(payer_key)


def _ended(job: JobResult) -> bool:
    return job.done and not job.settling


def _state(job: JobResult) -> str:
    return "settling its payment" if job.settling else job.status


class Client(Operations[JobResult]):
    """Blocking client. `with Client(url, key) as fleet: fleet.run(CropJob(...))`.

    `payer_key=` (instead of `api_key`) pays each job with x402: the module's docstring."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60,
        *,
        payer_key: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.payer = _payer(api_key, payer_key)  # the address that pays, with a payer key
        self._payer_key = payer_key
        self._http = httpx.Client(**client_args(base_url, api_key, timeout))

    def _send(self, req: Request, raw: bool = False) -> Any:
        return parse(self._exchange(req), raw)

    def _exchange(self, req: Request) -> httpx.Response:
        """The reply to `req`; with a payer key, an x402 challenge is paid once."""
        resp = self._request(req)
        if self._payer_key and (challenge := challenge_of(resp)) is not None:
            resp = self._request(paid(req, self._payer_key, challenge))
        return resp

    def _request(self, req: Request) -> httpx.Response:
        for attempt in range(RETRIES_429 + 1):
            resp = self._http.request(
                req.method,
                req.path,
                params=req.params,
                content=req.content,
                headers=req.headers,
                timeout=req.timeout or self.timeout,
            )
            delay = retry_after(resp, attempt)
            if delay is None:
                break
            time.sleep(delay)
        return resp

    def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None, wait: float = 0
    ) -> JobResult:
        """Enqueue a job; with `wait`, the server holds the reply up to that many seconds."""
        return JobResult.from_response(
            self._exchange(submit_request(spec, idempotency_key, wait, self.timeout))
        )

    def image(self, op: str, **fields: Any) -> ImageResult:
        """`POST /v1/image/{op}`: run one operation and answer with its output, inline
        (`.data`) or as a signed `outputUrl`. Fields are the route's (`file` is the input;
        a `bytes` value goes inline): `image("resize", file=data, width=400)`."""
        return ImageResult.from_response(self._exchange(image_request(op, fields, self.timeout)))

    def get(self, job_id: str) -> JobResult:
        return JobResult.from_dict(self._send(Request("GET", f"/v1/jobs/{quote(job_id)}")))

    def wait(self, job_id: str, timeout: float = 120, poll: float = 0.1) -> JobResult:
        """Poll until the job ends (a paid job: and its payment is settled or refused);
        TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for delay in delays(poll):
            job = self.get(job_id)
            if _ended(job):
                return job
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {job_id} still {_state(job)} after {timeout} s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def cancel(self, job_id: str) -> JobResult:
        return JobResult.from_dict(self._send(Request("DELETE", f"/v1/jobs/{quote(job_id)}")))

    def jobs(self, status: str | None = None, limit: int = 20) -> Iterator[JobResult]:
        """Every job of the account, newest first, fetched `limit` per page."""
        cursor = None
        while True:
            page = self._send(jobs_request(status, limit, cursor))
            yield from (JobResult.from_dict(job) for job in page["jobs"])
            cursor = page.get("next_cursor")
            if cursor is None or not page["jobs"]:
                return

    def upload(self, data: str | Path | bytes, key: str) -> dict[str, Any]:
        return self._send(Request("PUT", object_path(key), content=read_upload(data)))

    def download(self, key: str, path: str | Path | None = None) -> bytes:
        data = self._send(Request("GET", object_path(key)), raw=True)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def usage(self, **params: Any) -> dict[str, Any]:
        """Balance, holds and charges; `usage(**{"from": ..., "to": ...})` bounds the window."""
        return self._send(Request("GET", "/v1/usage", params or None))

    def submit_batch(
        self,
        specs: list[JobSpec | Mapping[str, Any]],
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Admit many jobs in one request: `{"id", "admitted", "rejected", "items"}`, each
        item `{"job": id}` or `{"error": {code, message}}`, in the order of `specs`."""
        return self._send(batch_request(specs, webhook_url, idempotency_key))

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """The batch's jobs counted by state (`counts`), and `done` once all ended."""
        return self._send(Request("GET", batch_path(batch_id)))

    def wait_batch(self, batch_id: str, timeout: float = 600, poll: float = 0.2) -> dict[str, Any]:
        """Poll until every job of the batch ended; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for delay in delays(poll):
            batch = self.get_batch(batch_id)
            if batch["done"]:
                return batch
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"batch {batch_id} not done after {timeout} s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def run(self, job: JobSpec, wait: bool = True) -> JobResult:
        submitted = self.submit(job, wait=SERVER_MAX_WAIT if wait else 0)
        return self.wait(submitted.id) if wait and not _ended(submitted) else submitted

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(Operations[Awaitable[JobResult]]):
    """The same API as `Client`, as coroutines (and `jobs()` as an async iterator)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60,
        *,
        payer_key: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.payer = _payer(api_key, payer_key)
        self._payer_key = payer_key
        self._http = httpx.AsyncClient(**client_args(base_url, api_key, timeout))

    async def _send(self, req: Request, raw: bool = False) -> Any:
        return parse(await self._exchange(req), raw)

    async def _exchange(self, req: Request) -> httpx.Response:
        resp = await self._request(req)
        if self._payer_key and (challenge := challenge_of(resp)) is not None:
            resp = await self._request(paid(req, self._payer_key, challenge))
        return resp

    async def _request(self, req: Request) -> httpx.Response:
        for attempt in range(RETRIES_429 + 1):
            resp = await self._http.request(
                req.method,
                req.path,
                params=req.params,
                content=req.content,
                headers=req.headers,
                timeout=req.timeout or self.timeout,
            )
            delay = retry_after(resp, attempt)
            if delay is None:
                break
            await asyncio.sleep(delay)
        return resp

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None, wait: float = 0
    ) -> JobResult:
        return JobResult.from_response(
            await self._exchange(submit_request(spec, idempotency_key, wait, self.timeout))
        )

    async def image(self, op: str, **fields: Any) -> ImageResult:
        return ImageResult.from_response(
            await self._exchange(image_request(op, fields, self.timeout))
        )

    async def get(self, job_id: str) -> JobResult:
        return JobResult.from_dict(await self._send(Request("GET", f"/v1/jobs/{quote(job_id)}")))

    async def wait(self, job_id: str, timeout: float = 120, poll: float = 0.1) -> JobResult:
        deadline = time.monotonic() + timeout
        for delay in delays(poll):
            job = await self.get(job_id)
            if _ended(job):
                return job
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {job_id} still {_state(job)} after {timeout} s")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def cancel(self, job_id: str) -> JobResult:
        return JobResult.from_dict(await self._send(Request("DELETE", f"/v1/jobs/{quote(job_id)}")))

    async def jobs(self, status: str | None = None, limit: int = 20) -> AsyncIterator[JobResult]:
        cursor = None
        while True:
            page = await self._send(jobs_request(status, limit, cursor))
            for job in page["jobs"]:
                yield JobResult.from_dict(job)
            cursor = page.get("next_cursor")
            if cursor is None or not page["jobs"]:
                return

    async def upload(self, data: str | Path | bytes, key: str) -> dict[str, Any]:
        return await self._send(Request("PUT", object_path(key), content=read_upload(data)))

    async def download(self, key: str, path: str | Path | None = None) -> bytes:
        data = await self._send(Request("GET", object_path(key)), raw=True)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def usage(self, **params: Any) -> dict[str, Any]:
        return await self._send(Request("GET", "/v1/usage", params or None))

    async def submit_batch(
        self,
        specs: list[JobSpec | Mapping[str, Any]],
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return await self._send(batch_request(specs, webhook_url, idempotency_key))

    async def get_batch(self, batch_id: str) -> dict[str, Any]:
        return await self._send(Request("GET", batch_path(batch_id)))

    async def wait_batch(
        self, batch_id: str, timeout: float = 600, poll: float = 0.2
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for delay in delays(poll):
            batch = await self.get_batch(batch_id)
            if batch["done"]:
                return batch
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"batch {batch_id} not done after {timeout} s")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def run(self, job: JobSpec, wait: bool = True) -> JobResult:
        submitted = await self.submit(job, wait=SERVER_MAX_WAIT if wait else 0)
        return await self.wait(submitted.id) if wait and not _ended(submitted) else submitted

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
