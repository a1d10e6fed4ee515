"""Batch admission: many job specs admitted in one request, each as `admit_job` would
(gateway/admission.py: the same checks, quote and hold), with the costs paid once per batch:
one authentication (the route's), each input's look-ups and header reads once
(gateway/admission_objects.py), one quote per distinct spec, the holds in one pipeline (run in
order, so each sees the ones before it), and every record and task message with the batch's
hash in one transaction. An item that fails its checks or its hold is that item's error;
the others are admitted. One Idempotency-Key covers the whole batch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import msgspec
import redis

from billing.accounts import Account
from gateway import admission
from gateway.admission_objects import AdmissionObjects
from gateway.idempotency import Idempotency
from gateway.quoting import Quote, quote
from gateway.services import Context
from imagefleet.dispatch import RedisDispatch, redis_job_message, redis_task_message
from jobs import batches
from jobs.errors import ErrorCode, FleetError
from jobs.lifecycle import withdraw
from jobs.pools import Pool
from jobs.records import JobBilling, JobError, JobRecord, new_job_id, now
from jobs.registry import decode_spec, operation_of
from jobs.spec import JobSpec

log = logging.getLogger("imagefleet.gateway")
_encode = msgspec.json.Encoder().encode


class BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    jobs: list[msgspec.Raw]
    webhook_url: str | None = None


def item_error(index: int, exc: FleetError) -> dict[str, Any]:
    """An item's error, its path prefixed with the item's place in `$.jobs`."""
    where = f"`$.jobs[{index}]"
    message = (
        exc.message.replace("`$", where)
        if "`$" in exc.message
        else (f"{exc.message} - at {where}`")
    )
    return {"error": {"code": exc.code.value, "message": message, **(exc.details or {})}}


def decode_body(ctx: Context, body: bytes) -> BatchBody:
    try:
        batch = msgspec.json.decode(body, type=BatchBody)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    limit = ctx.settings.max_batch_jobs
    if not 1 <= len(batch.jobs) <= limit:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            f"a batch holds 1 to {limit} jobs (FLEET_MAX_BATCH_JOBS); this one has"
            f" {len(batch.jobs)} - at `$.jobs`",
        )
    return batch


def _claims(ctx: Context) -> Idempotency[batches.Batch]:
    """Batches' Idempotency-Keys, kept apart from the jobs' (a replay finds the batch)."""
    return Idempotency(
        ctx.redis, lambda batch_id: batches.load(ctx.redis, batch_id), "imagefleet:idem-batch:"
    )


@dataclasses.dataclass
class _Item:
    job_id: str
    spec: JobSpec
    priced: Quote


def _prepared(
    ctx: Context, tenant: str, raws: list[msgspec.Raw], answers: list[dict[str, Any]]
) -> dict[int, _Item]:
    """Decode, check and quote every item; an item that fails is its error in `answers`."""
    items: dict[int, _Item] = {}
    quotes: dict[bytes, Quote] = {}
    for index, raw in enumerate(raws):
        job_id = new_job_id()
        try:
            try:
                spec = decode_spec(bytes(raw))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise FleetError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
            # A batch's jobs keep their own webhook_url; the account's default goes to the
            # batch's one webhook, not to each job.
            spec = admission._prepare(ctx, tenant, job_id, spec)
            shape = _encode(spec)
            priced = quotes.get(shape) or quotes.setdefault(shape, quote(ctx, tenant, spec))
        except FleetError as exc:
            answers[index] = item_error(index, exc)
            continue
        items[index] = _Item(job_id, spec, priced)
    return items


def _hold_all(ctx: Context, tenant: str, items: dict[int, _Item], answers: list[Any]) -> None:
    """Every hold in one pipeline, in item order; a refused item becomes its error."""
    holds = [
        (
            item.job_id,
            item.priced.amount,
            operation_of(item.spec).name,
            item.priced.megapixels or 0.0,
        )
        for item in items.values()
    ]
    refusals = ctx.ledger.hold_many(tenant, holds)
    for (index, item), refused in zip(list(items.items()), refusals, strict=True):
        if refused is not None:
            answers[index] = item_error(
                index, admission.refusal(item.priced, operation_of(item.spec).name, refused)
            )
            del items[index]


def _release_all(ctx: Context, tenant: str, items: dict[int, _Item]) -> None:
    try:
        for item in items.values():
            ctx.ledger.release(tenant, item.job_id, operation_of(item.spec).name)
    except redis.RedisError as exc:  # the sweeper releases the rest later
        log.warning("cleanup after a failed batch admission failed: %s", exc)


def _record_all(
    ctx: Context, batch: batches.Batch, records: list[JobRecord], redis_broker: bool
) -> None:
    """The batch's hash, its records and (Redis broker) their task messages in one
    transaction; any other broker gets the messages through Celery after it."""
    message = (
        redis_task_message(batches.DELIVER_BATCH_WEBHOOK, [batch.id, 0], Pool.WEBHOOKS)
        if redis_broker and batch.webhook_url
        else None
    )
    with ctx.redis.pipeline() as pipe:
        batches.stage(pipe, batch, message, ctx.settings.job_ttl_seconds)
        sent = (
            [redis_job_message(r.id, r.operation, ctx.settings) for r in records]
            if redis_broker
            else None
        )
        ctx.jobs.stage_many(pipe, records, sent)
        pipe.execute()
    if not redis_broker:
        for record in records:
            try:
                ctx.dispatch.job(record.id, record.operation)
            except Exception as exc:  # broker down: the job ends visibly, as admit_job's
                log.error("enqueue of %s failed: %s", record.id, exc)
                error = JobError(ErrorCode.UNAVAILABLE.value, "the job queue is unavailable")
                ctx.jobs.apply(record.id, withdraw(error))


def admit_batch(
    ctx: Context, account: Account, body: bytes, idem: tuple[str, str] | None
) -> tuple[batches.Batch, bool]:
    """Admit a batch's jobs; returns the batch and whether it is new (else a replay)."""
    request = decode_body(ctx, body)
    webhook_url = request.webhook_url or account.webhook_url
    if request.webhook_url is not None:
        admission._check_webhook(ctx, request.webhook_url)
    batch_id = batches.new_batch_id()
    existing = (
        _claims(ctx).claim(account.id, idem[0], idem[1], batch_id) if idem is not None else None
    )
    if existing is not None:
        return existing, False
    ctx = dataclasses.replace(ctx, objects=AdmissionObjects(ctx.objects))
    answers: list[dict[str, Any]] = [{} for _ in request.jobs]
    items: dict[int, _Item] = {}
    try:
        items = _prepared(ctx, account.id, request.jobs, answers)
        for queue in {operation_of(item.spec).queue for item in items.values()}:
            admission._check_backlog(ctx, queue)
        _hold_all(ctx, account.id, items, answers)
        records = []
        for index, item in items.items():
            billing = JobBilling(
                megapixels=item.priced.megapixels, quoted_micros=item.priced.amount
            )
            records.append(
                admission.new_record(
                    account.id, item.job_id, item.spec, billing, item.priced, batch_id
                )
            )
            answers[index] = {"job": item.job_id}
        batch = batches.Batch(
            id=batch_id,
            tenant=account.id,
            created_at=now().isoformat(),
            items=_encode(answers),
            admitted=len(records),
            total=len(answers),
            webhook_url=webhook_url,
        )
        _record_all(ctx, batch, records, isinstance(ctx.dispatch, RedisDispatch))
        ctx.replicated(*records)  # on a replica before 202 (Sentinel): else 503, withdrawn
    except BaseException:
        _release_all(ctx, account.id, items)
        if idem is not None:
            _claims(ctx).release(account.id, idem[0], batch_id)
        raise
    if not batch.admitted:
        batch.ended_at = batch.created_at
    return batch, True
