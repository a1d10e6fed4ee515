"""Admission: the use case that turns a decoded job spec into an accepted, paid-for,
queued job, or refuses it with a documented code before anything is charged. No HTTP here:
`POST /v1/jobs`, `POST /v1/image/{op}` and any later front door (payments) call
`admit_job` with the caller's tenant; `POST /v1/batches` runs the same steps over many specs
(gateway/batch_admission.py: `_prepare`, `refusal`, `new_record`, `_check_backlog`).

Steps: backpressure, the Idempotency-Key claim, the spec's own checks against the operator's
config, the webhook address, the output keys (gateway/output_keys.py), inputs (inline bytes
stored, named objects checked), the quote from the inputs' headers, the hold, the record,
dispatch, and replication before the answer.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import msgspec
import redis

from billing.ledger import HoldRefused
from gateway.admission_objects import AdmissionObjects
from gateway.idempotency import Idempotency
from gateway.keys import checked_key
from gateway.output_keys import checked_outputs
from gateway.quoting import Quote, quote
from gateway.services import Context
from imagefleet.addresses import Refused, check_address
from imagefleet.dispatch import QueueUnavailable
from jobs import fairshare
from jobs.errors import ErrorCode, FleetError
from jobs.lifecycle import new_webhook
from jobs.records import JobBilling, JobRecord, JobStatus, Payment, new_job_id, now
from jobs.registry import operation_of
from jobs.spec import InputRef, InputSource, JobSpec
from storage import tenant_key

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


def checked_spec(ctx: Context, spec: JobSpec, default_webhook: str | None = None) -> JobSpec:
    """The checks of a spec that read no input: the operator's limits, the webhook address,
    the output key (`POST /v1/jobs/validate` runs these alone)."""
    spec.admit(ctx.settings)
    if spec.webhook_url is None and default_webhook:  # the account's default webhook
        spec = msgspec.structs.replace(spec, webhook_url=default_webhook)
    if spec.webhook_url is not None:
        _check_webhook(ctx, spec.webhook_url)
    if spec.output is not None:
        spec = msgspec.structs.replace(spec, output=checked_key(spec.output, "$.output"))
    return spec


def _prepare(
    ctx: Context, tenant: str, job_id: str, spec: JobSpec, default_webhook: str | None = None
) -> JobSpec:
    spec = checked_spec(ctx, spec, default_webhook)
    spec = checked_outputs(ctx, tenant, job_id, spec)  # before anything is stored
    sources = spec.sources()
    if sources:
        spec = spec.with_sources(
            [
                _resolve_source(ctx, tenant, job_id, index, path, source)
                for index, (path, source) in enumerate(sources)
            ]
        )
    return spec


def refusal(priced: Quote, name: str, refused: HoldRefused) -> FleetError:
    """Why a hold was refused, as the job's error (a batch item's too)."""
    amount, megapixels = priced.amount, priced.megapixels
    if refused.disabled:
        return FleetError(ErrorCode.UNAUTHORIZED, "unknown or disabled API key")
    basis = f"{megapixels:g} MP" if megapixels is not None else f"flat price of {name}"
    return FleetError(
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


@dataclass(frozen=True)
class Authorized:
    """An x402 payment verified for the job (gateway/x402_api.py): it stands for the hold."""

    payment: Payment
    header: str  # the X-PAYMENT value the settlement sends


def _hold(
    ctx: Context, tenant: str, job_id: str, spec: JobSpec, paid: Authorized | None
) -> tuple[JobBilling, Quote]:
    priced = quote(ctx, tenant, spec)
    amount, megapixels, name = priced.amount, priced.megapixels, operation_of(spec).name
    if paid is not None:
        if amount > paid.payment.amount_micros:  # (the quote was made from these bytes)
            raise FleetError(
                ErrorCode.PAYMENT_REQUIRED,
                f"this job costs {amount} micro-$; the payment authorizes"
                f" {paid.payment.amount_micros}",
            )
        ctx.ledger.authorize(tenant, job_id, amount, name, megapixels or 0.0)
    elif (refused := ctx.ledger.hold(tenant, job_id, amount, name, megapixels or 0.0)) is not None:
        raise refusal(priced, name, refused)
    return JobBilling(megapixels=megapixels, quoted_micros=amount), priced


def new_record(
    tenant: str,
    job_id: str,
    spec: JobSpec,
    billing: JobBilling,
    priced: Quote,
    batch_id: str | None = None,
) -> JobRecord:
    """The record of a job admitted and held for, queued."""
    created = now()
    return JobRecord(
        id=job_id,
        tenant=tenant,
        operation=operation_of(spec).name,
        status=JobStatus.QUEUED,
        spec=spec,
        created_at=created,
        updated_at=created,
        billing=billing,
        webhook=new_webhook(spec.webhook_url),
        inputs=priced.inputs,
        batch_id=batch_id,
    )


def _check_backlog(ctx: Context, queue: str) -> None:
    """Backpressure: refuse (503, Retry-After) while the pool's queue is too deep, before
    anything is stored or held, instead of letting the backlog grow without bound."""
    if not ctx.settings.broker_url.startswith("redis"):
        return  # a RabbitMQ broker applies its own queue limits
    with ctx.redis.pipeline(transaction=False) as pipe:  # one round trip for both
        pipe.llen(queue)  # Celery keeps a Redis queue as a list of that name
        pipe.hget(fairshare.pool_key(queue), "p")  # and jobs parked for their turn
        waiting, parked = pipe.execute()
    depth = int(waiting) + int(parked or 0)
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
    paid: Authorized | None = None,
) -> tuple[JobRecord, bool]:
    """Claim the idempotency key, validate, resolve inputs, quote, hold (or, `paid`, take
    the x402 authorization for the hold), record and dispatch the job. Returns the job and
    whether it is new. Anything refused here is charged nothing."""
    _check_backlog(ctx, operation_of(spec).queue)
    # Each input looked up once: its check below and its quote share the look-up.
    ctx = dataclasses.replace(ctx, objects=AdmissionObjects(ctx.objects))
    job_id = new_job_id()
    if idem is not None:
        existing = Idempotency(ctx.redis, ctx.jobs.get).claim(tenant, idem[0], idem[1], job_id)
        if existing is not None:
            return existing, False
    held = False
    try:
        spec = _prepare(ctx, tenant, job_id, spec, default_webhook)
        held = True  # from here a lost reply may hide a hold Redis made: release either way
        billing, priced = _hold(ctx, tenant, job_id, spec, paid)
        record = new_record(tenant, job_id, spec, billing, priced)
        if paid is not None:
            record.payment, record.payment_header = paid.payment, paid.header
        try:
            ctx.dispatch.admit(ctx.jobs, record)  # recorded and sent, or withdrawn
        except QueueUnavailable:
            raise FleetError(
                ErrorCode.UNAVAILABLE, "the job queue is unavailable; retry later"
            ) from None
        ctx.replicated(record)  # on a replica before 202 (Sentinel): else 503, job withdrawn
        return record, True
    except BaseException:
        try:
            if held:
                ctx.ledger.release(tenant, job_id, operation_of(spec).name)
            if idem is not None:
                Idempotency(ctx.redis, ctx.jobs.get).release(tenant, idem[0], job_id)
        except redis.RedisError as exc:  # Redis is away: the sweeper releases the hold later
            log.warning("cleanup after a failed admission of %s failed: %s", job_id, exc)
        raise
