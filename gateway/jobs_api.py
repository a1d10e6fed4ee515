"""The jobs routes: submit (`POST /v1/jobs`, admission in gateway/admission.py), get, wait,
list, cancel, redeliver a webhook."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from billing.accounts import Account
from billing.endings import cancel_charge, settle_ending
from gateway.admission import admit_job
from gateway.buffers import done_with_body
from gateway.context import Context, authenticate, context
from gateway.http import JSONResponse, read_body
from gateway.idempotency import body_hash
from gateway.redelivery import take_redelivery
from gateway.watch import job_changes
from gateway.x402_api import (
    PAYER,
    Unpaid,
    admit_paid,
    is_payer,
    limit_keyless,
    paid_view,
    paying,
    payment_of,
    settled_headers,
    settlement,
)
from imagefleet.dispatch import time_limits
from jobs import lifecycle
from jobs.errors import ErrorCode, FleetError
from jobs.prices import configured
from jobs.records import JobRecord, JobStatus
from jobs.registry import OPERATIONS, decode_spec
from jobs.spec import JobSpec

log = logging.getLogger("imagefleet.gateway")


def _wait_seconds(request: Request, ctx: Context) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    limit = ctx.settings.max_wait_seconds
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= limit:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            f"`wait` is a number of seconds from 0 to {limit} - at `?wait`",
        )
    return value


async def wait_for_end(ctx: Context, job_id: str, seconds: float) -> JobRecord | None:
    """The job once it ends (or as it is at the deadline). Wakes on the job's change
    notifications, so the reply leaves as soon as the job ends; re-reads at least every
    second in case a notification was missed."""
    latest = None
    async with aclosing(
        job_changes(ctx.events, ctx.jobs, job_id, seconds, quiet=1.0, ends_only=True)
    ) as changes:
        async for record in changes:
            latest = record
    return latest


def _submit(
    ctx: Context, account: Account, body: bytes, idempotency_key: str | None
) -> tuple[JobRecord, bool]:
    """Decode and admit: one thread hop for all of a submission's blocking calls."""
    spec = _decoded(body)
    idem = (idempotency_key, body_hash(body)) if idempotency_key else None
    record, new = admit_job(ctx, account.id, spec, idem, account.webhook_url)
    if new:
        log.info(
            "job %s %s queued for %s",
            record.id,
            record.operation,
            account.id,
            extra={"job_id": record.id},
        )
    return record, new


def _decoded(body: bytes) -> JobSpec:
    try:
        return decode_spec(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, str(exc)) from None


async def _submit_paid(request: Request, ctx: Context, wait: float, body: bytes) -> Response:
    """`POST /v1/jobs` paid with x402 (gateway/x402_api.py): 402 until a payment pays. The
    job's result shows once its payment is settled (`paid_view`)."""
    presented = payment_of(request)
    try:
        record = await run_in_threadpool(admit_paid, ctx, _decoded(body), presented, "/v1/jobs")
    except Unpaid as unpaid:
        return unpaid.response()
    assert presented is not None  # admitted: it was paid
    log.info("job %s %s queued for %s", record.id, record.operation, record.tenant)
    headers = {"Location": f"/v1/jobs/{record.id}"}
    ended = await wait_for_end(ctx, record.id, wait) if wait > 0 else None
    if ended is None or not ended.status.terminal:
        view = await run_in_threadpool(paid_view, ctx, ended or record)
        return JSONResponse(view, status_code=202, headers=headers)
    if ended.status is JobStatus.SUCCEEDED:
        answer = await run_in_threadpool(settlement, ctx, ended.id)
        headers.update(settled_headers(answer, presented))
        ended = await run_in_threadpool(ctx.jobs.get, ended.id) or ended
    return JSONResponse(await run_in_threadpool(paid_view, ctx, ended), headers=headers)


async def submit_job(request: Request) -> Response:
    ctx = context(request)
    wait = _wait_seconds(request, ctx)
    paid = paying(request, ctx)  # no API key, x402 on: the caller pays per call
    if paid:
        await limit_keyless(request, ctx)
    else:  # the key before the body: a body without a valid key is never read
        await authenticate(request)
    # Inline base64 grows 4/3; leave room for the other fields.
    body = await read_body(request, ctx.settings.max_inline_bytes * 4 // 3 + 64 * 1024)
    if paid:
        return await _submit_paid(request, ctx, wait, body)
    record, new = await run_in_threadpool(
        _submit, ctx, request.state.account, body, request.headers.get("idempotency-key")
    )
    del body  # the wait below holds the request, not its body
    done_with_body(request)

    headers = {"Location": f"/v1/jobs/{record.id}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    if wait > 0:
        ended = await wait_for_end(ctx, record.id, wait)
        if ended is not None and ended.status.terminal:
            return JSONResponse(ended.public(), status_code=200, headers=headers)
        record = ended or record
    return JSONResponse(record.public(), status_code=202, headers=headers)


def _owed_by_cancel(ctx: Context, operation: str) -> Callable[[JobRecord], int]:
    """A cancel's charge (billing/endings.py) with this operation's soft time limit and
    1 MP price."""
    soft, _ = time_limits(operation, ctx.settings)
    op = OPERATIONS[operation]
    one_mp = configured(op.name, op.billing, ctx.settings.prices).price(1.0)
    return lambda record: cancel_charge(record, soft, one_mp)


def _cancel(ctx: Context, tenant: str, job_id: str) -> JobRecord:
    record = ctx.jobs.get(job_id)
    if record is None or record.tenant != tenant:
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")

    # A running job's worker finishes its step, finds the job canceled and keeps nothing;
    # the record says what the work so far owes, then the ledger moves it.
    canceled = ctx.jobs.apply(job_id, lifecycle.cancel(_owed_by_cancel(ctx, record.operation)))
    if canceled is None:
        ended = ctx.jobs.get(job_id)
        raise FleetError(
            ErrorCode.JOB_ENDED,
            f"the job already ended ({ended.status.value})" if ended else "no such job",
        )
    charged = settle_ending(ctx.ledger, canceled)
    if charged != canceled.billing.charged_micros:  # its run captured before the cancel landed
        canceled = ctx.jobs.apply(job_id, lifecycle.keep_charge(charged)) or canceled
    log.info("job %s canceled by %s", job_id, tenant)
    if canceled.spec.webhook_url:
        ctx.dispatch.webhook(job_id)
    return canceled


def _redeliver(ctx: Context, tenant: str, job_id: str) -> dict[str, str | int]:
    record = ctx.jobs.get(job_id)
    if record is None or record.tenant != tenant:
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")
    if not record.spec.webhook_url:
        raise FleetError(ErrorCode.VALIDATION_ERROR, "this job has no webhook_url")
    if not record.status.terminal:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            "the job has not ended yet; its webhook is sent when it does",
        )
    left = take_redelivery(ctx.jobs.redis, tenant, job_id, ctx.settings)
    ctx.dispatch.webhook(job_id)
    return {"job": job_id, "webhook": "queued", "redeliveries_left": left}


async def redeliver_webhook(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    body = await run_in_threadpool(
        _redeliver, context(request), tenant, request.path_params["job_id"]
    )
    return JSONResponse(body, status_code=202)


async def cancel_job(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    record = await run_in_threadpool(
        _cancel, context(request), tenant, request.path_params["job_id"]
    )
    return JSONResponse(record.public())


async def list_jobs(request: Request) -> JSONResponse:
    """The caller's jobs, newest first: `?status=`, `?limit=` (1-100), `?cursor=`."""
    tenant = await authenticate(request)
    ctx = context(request)
    status = request.query_params.get("status")
    if status is not None and status not in {s.value for s in JobStatus}:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            f"status is one of {', '.join(s.value for s in JobStatus)} - at `?status`",
        )
    try:
        limit = int(request.query_params.get("limit", "20"))
        cursor = request.query_params.get("cursor")
        before = int(cursor) if cursor else None
    except ValueError:
        raise FleetError(ErrorCode.VALIDATION_ERROR, "`limit` and `cursor` are integers") from None
    if not 1 <= limit <= 100:
        raise FleetError(ErrorCode.VALIDATION_ERROR, "`limit` is 1 to 100 - at `?limit`")
    records, next_cursor = await run_in_threadpool(
        ctx.jobs.newest, tenant, limit, before, JobStatus(status) if status else None
    )
    return JSONResponse({"jobs": [r.public() for r in records], "next_cursor": next_cursor})


async def get_job(request: Request) -> JSONResponse:
    ctx = context(request)
    # A payer has no key: their job is reachable by its (unguessable) id alone.
    tenant = PAYER if paying(request, ctx) else await authenticate(request)
    record = await run_in_threadpool(ctx.jobs.get, request.path_params["job_id"])
    if record is None or not (record.tenant == tenant or is_payer(tenant, record.tenant)):
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")  # 404, never 403: no leaks
    if tenant == PAYER:
        return JSONResponse(await run_in_threadpool(paid_view, ctx, record))
    return JSONResponse(record.public())
