"""`POST /v1/jobs` and `GET /v1/jobs/{id}`."""

from __future__ import annotations

import logging
from contextlib import aclosing

import msgspec
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.context import Context, admitted, api_key, authenticate, context
from gateway.http import JSONResponse, checked_key, read_body
from gateway.idempotency import Idempotency, body_hash
from gateway.quoting import Quote, quote
from gateway.watch import job_changes
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobBilling, JobError, JobRecord, JobStatus, new_job_id, now
from jobs.registry import decode_spec, operation_of
from jobs.spec import InputRef, InputSource, JobSpec
from storage import tenant_key
from worker.celery_app import enqueue_job, enqueue_webhook, redis_job_message
from worker.webhooks import Refused, check_address

log = logging.getLogger("imagefleet.gateway")


def _resolve_source(
    ctx: Context, tenant: str, job_id: str, index: int, path: str, source: InputSource
) -> InputSource:
    """Store inline bytes and check a named object exists; records keep only keys."""
    if isinstance(source, InputRef) and source.inline is not None:
        limit = ctx.settings.max_inline_bytes
        if len(source.inline) > limit:
            raise FleetError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"inline input is {len(source.inline)} bytes; the limit is {limit}"
                " (upload larger inputs with PUT /v1/objects/{key})"
                f" - at `{path}.inline`",
            )
        key = f"jobs/{job_id}/input" + (f"-{index}" if index else "")
        ctx.objects.put(tenant_key(tenant, key), source.inline, "application/octet-stream")
        return InputRef(input_key=key)
    if isinstance(source, str):
        key = checked_key(source, path)
        resolved: InputSource = key
    else:
        assert source.input_key is not None
        path = f"{path}.inputKey"
        key = checked_key(source.input_key, path)
        resolved = InputRef(input_key=key)
    size = ctx.objects.size(tenant_key(tenant, key))
    if size is None:
        raise FleetError(ErrorCode.NOT_FOUND, f"input object {key!r} not found - at `{path}`")
    if size > ctx.settings.max_object_bytes:  # e.g. a presigned S3 upload that ran over
        raise FleetError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"input object {key!r} is {size} bytes;"
            f" the limit is {ctx.settings.max_object_bytes} - at `{path}`",
        )
    return resolved


def _check_webhook(ctx: Context, url: str) -> None:
    cfg = ctx.settings
    try:
        check_address(url, cfg.webhook_allow_loopback, cfg.webhook_allow_private)
    except Refused as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, f"{exc} - at `$.webhook_url`") from None


def _prepare(
    ctx: Context, tenant: str, job_id: str, spec: JobSpec, default_webhook: str | None = None
) -> JobSpec:
    spec.admit(ctx.settings)
    if spec.webhook_url is None and default_webhook:  # the account's default webhook
        spec = msgspec.structs.replace(spec, webhook_url=default_webhook)
    if spec.webhook_url is not None:
        _check_webhook(ctx, spec.webhook_url)
    if spec.output is not None:
        spec = msgspec.structs.replace(spec, output=checked_key(spec.output, "$.output"))
    sources = spec.sources()
    if sources:
        spec = spec.with_sources(
            [
                _resolve_source(ctx, tenant, job_id, index, path, source)
                for index, (path, source) in enumerate(sources)
            ]
        )
    return spec


def _enqueue(ctx: Context, record: JobRecord) -> None:
    try:
        enqueue_job(record.id, record.operation, ctx.settings)
    except Exception as exc:  # broker down: end the job visibly rather than lose it
        log.error("enqueue of %s failed: %s", record.id, exc)

        def mark(rec: JobRecord) -> None:
            rec.status = JobStatus.FAILED
            rec.error = JobError(ErrorCode.UNAVAILABLE.value, "the job queue is unavailable")
            rec.finished_at = now()

        ctx.jobs.update(record.id, (JobStatus.QUEUED,), mark)
        raise FleetError(
            ErrorCode.UNAVAILABLE, "the job queue is unavailable; retry later"
        ) from exc


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


def _hold(ctx: Context, tenant: str, job_id: str, spec: JobSpec) -> tuple[JobBilling, Quote]:
    priced = quote(ctx, tenant, spec)
    amount, megapixels, name = priced.amount, priced.megapixels, operation_of(spec).name
    refused = ctx.ledger.hold(tenant, job_id, amount, name, megapixels or 0.0)
    if refused is not None:
        if refused.disabled:
            raise FleetError(ErrorCode.UNAUTHORIZED, "unknown or disabled API key")
        basis = f"{megapixels:g} MP" if megapixels is not None else f"flat price of {name}"
        raise FleetError(
            ErrorCode.PAYMENT_REQUIRED,
            f"this job costs {amount} micro-$ ({basis}); the account has"
            f" {refused.available} micro-$ available",
            details={
                "price_micros": amount,
                "megapixels": megapixels,
                "balance_micros": refused.balance,
                "available_micros": refused.available,
            },
        )
    return JobBilling(megapixels=megapixels, quoted_micros=amount, state="held"), priced


def _check_backlog(ctx: Context, queue: str) -> None:
    """Backpressure: refuse (503, Retry-After) while the pool's queue is too deep, before
    anything is stored or held, instead of letting the backlog grow without bound."""
    if not ctx.settings.broker_url.startswith("redis"):
        return  # a RabbitMQ broker applies its own queue limits
    depth = ctx.redis.llen(queue)  # Celery keeps a Redis queue as a list of that name
    if depth >= ctx.settings.max_queue_depth:
        raise FleetError(
            ErrorCode.UNAVAILABLE,
            f"the {queue} queue holds {depth} jobs (limit"
            f" {ctx.settings.max_queue_depth}); retry shortly",
            headers={"Retry-After": "5"},
        )


def admit_job(
    ctx: Context,
    tenant: str,
    spec: JobSpec,
    idem: tuple[str, str] | None,
    default_webhook: str | None = None,
) -> tuple[JobRecord, bool]:
    """Claim the idempotency key, prepare inputs, quote, hold, record and enqueue the job.
    Returns the job and whether it is new. Anything refused here is charged nothing."""
    _check_backlog(ctx, operation_of(spec).queue)
    job_id = new_job_id()
    if idem is not None:
        existing = Idempotency(ctx.redis, ctx.jobs).claim(tenant, idem[0], idem[1], job_id)
        if existing is not None:
            return existing, False
    held = False
    try:
        spec = _prepare(ctx, tenant, job_id, spec, default_webhook)
        held = True  # from here a lost reply may hide a hold Redis made: release either way
        billing, priced = _hold(ctx, tenant, job_id, spec)
        created = now()
        record = JobRecord(
            id=job_id,
            tenant=tenant,
            operation=operation_of(spec).name,
            status=JobStatus.QUEUED,
            spec=spec,
            created_at=created,
            updated_at=created,
            billing=billing,
            webhook={"url": spec.webhook_url, "state": "pending", "deliveries": []}
            if spec.webhook_url
            else None,
            inputs=priced.inputs,
        )
        if ctx.settings.broker_url == ctx.settings.redis_url:  # record and message together
            ctx.jobs.create(record, redis_job_message(record.id, record.operation, ctx.settings))
        else:
            ctx.jobs.create(record)
            _enqueue(ctx, record)
        ctx.replicated(record)  # on a replica before 202 (Sentinel): else 503, job withdrawn
        return record, True
    except BaseException:
        try:
            if held:
                ctx.ledger.release(tenant, job_id, operation_of(spec).name)
            if idem is not None:
                Idempotency(ctx.redis, ctx.jobs).release(tenant, idem[0], job_id)
        except redis.RedisError as exc:  # Redis is away: the sweeper releases the hold later
            log.warning("cleanup after a failed admission of %s failed: %s", job_id, exc)
        raise


def _submit(
    ctx: Context, key: str, body: bytes, idempotency_key: str | None
) -> tuple[JobRecord, bool]:
    """Authenticate, decode and admit: one thread hop for all of a submission's blocking calls."""
    account = admitted(ctx.authenticator.check_blocking(key))
    try:
        spec = decode_spec(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
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


async def submit_job(request: Request) -> JSONResponse:
    key = api_key(request)
    ctx = context(request)
    wait = _wait_seconds(request, ctx)
    # Inline base64 grows 4/3; leave room for the other fields.
    body = await read_body(request, ctx.settings.max_inline_bytes * 4 // 3 + 64 * 1024)
    record, new = await run_in_threadpool(
        _submit, ctx, key, body, request.headers.get("idempotency-key")
    )

    headers = {"Location": f"/v1/jobs/{record.id}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    if wait > 0:
        ended = await wait_for_end(ctx, record.id, wait)
        if ended is not None and ended.status.terminal:
            return JSONResponse(ended.public(), status_code=200, headers=headers)
        record = ended or record
    return JSONResponse(record.public(), status_code=202, headers=headers)


def _cancel(ctx: Context, tenant: str, job_id: str) -> JobRecord:
    record = ctx.jobs.get(job_id)
    if record is None or record.tenant != tenant:
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")

    def cancel(rec: JobRecord) -> None:
        rec.status = JobStatus.CANCELED
        rec.finished_at = now()
        rec.billing.state = "released"

    # A running job's worker finishes its step, finds the job canceled and keeps nothing.
    canceled = ctx.jobs.update(job_id, (JobStatus.QUEUED, JobStatus.RUNNING), cancel)
    if canceled is None:
        ended = ctx.jobs.get(job_id)
        raise FleetError(
            ErrorCode.JOB_ENDED,
            f"the job already ended ({ended.status.value})" if ended else "no such job",
        )
    ctx.ledger.release(tenant, job_id, record.operation)
    charged = ctx.ledger.captured(tenant, job_id)
    if charged:  # its worker captured just before the cancel landed: say so, honestly

        def keep_charge(rec: JobRecord) -> None:
            rec.billing.state, rec.billing.charged_micros = "captured", charged

        canceled = ctx.jobs.update(job_id, (JobStatus.CANCELED,), keep_charge) or canceled
    log.info("job %s canceled by %s", job_id, tenant)
    if canceled.spec.webhook_url:
        enqueue_webhook(job_id)
    return canceled


def _redeliver(ctx: Context, tenant: str, job_id: str) -> dict[str, str]:
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
    enqueue_webhook(job_id)
    return {"job": job_id, "webhook": "queued"}


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
        ctx.jobs.list, tenant, limit, before, JobStatus(status) if status else None
    )
    return JSONResponse({"jobs": [r.public() for r in records], "next_cursor": next_cursor})


async def get_job(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    record = await run_in_threadpool(context(request).jobs.get, request.path_params["job_id"])
    if record is None or record.tenant != tenant:  # 404, never 403: ids don't leak existence
        raise FleetError(ErrorCode.NOT_FOUND, "no such job")
    return JSONResponse(record.public())
