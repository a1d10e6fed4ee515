"""The image-tools spec's synchronous shape: `POST /v1/image/{op}` waits for the job and
answers with the output envelope (inline base64 up to 4 MB, else a signed `outputUrl`)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import admit_job
from gateway.buffers import done_with_body
from gateway.context import Context, authenticate, context
from gateway.http import JSONResponse, read_body
from gateway.idempotency import body_hash
from gateway.jobs_api import wait_for_end
from gateway.signing import signed_url
from gateway.x402_api import (
    Presented,
    Unpaid,
    admit_paid,
    limit_keyless,
    paying,
    payment_of,
    settled_headers,
    settlement,
)
from jobs.errors import HTTP_STATUS, ErrorCode, FleetError
from jobs.records import JobRecord, JobStatus
from jobs.registry import OPERATIONS, decode_spec
from jobs.spec import JobSpec
from storage import tenant_key

# The image-tools spec's names for job-spec fields, declared once: `file` is the input, and
# crop's rect is spread over the body (left, top, width, height). Error paths and the
# OpenAPI document (gateway/openapi.py) are derived from these.
FILE_FIELD = ("file", "input")  # (body field, spec field)
CROP_RECT = {"left": "x", "top": "y", "width": "width", "height": "height"}  # body -> rect


def job_body(op: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The synchronous body -> a job spec's body."""
    caller, spec = FILE_FIELD
    body = {(spec if k == caller else k): v for k, v in fields.items()}
    if op == "crop" and ("left" in body or "top" in body):
        defaults = {"left": 0, "top": 0}
        body["rect"] = {r: body.pop(b, defaults.get(b)) for b, r in CROP_RECT.items()}
    return {"operation": op, **body}


def caller_message(op: str, message: str) -> str:
    """An error message with the caller's field paths (`$.file.inputKey`, crop's `$.left`)."""
    caller, spec = FILE_FIELD
    message = message.replace(f"`$.{spec}", f"`$.{caller}")
    if op == "crop":
        for body_field, rect_field in CROP_RECT.items():
            message = message.replace(f"`$.rect.{rect_field}`", f"`$.{body_field}`")
    return message


def _spec(op: str, raw: bytes) -> JobSpec:
    try:
        fields = msgspec.json.decode(raw)
        if not isinstance(fields, dict):
            raise msgspec.ValidationError("the body is a JSON object - at `$`")
        return decode_spec(msgspec.json.encode(job_body(op, fields)))
    except RecursionError:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR, "the JSON is nested too deeply - at `$`"
        ) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, caller_message(op, str(exc))) from None


def _admit(
    ctx: Context,
    tenant: str | None,
    op: str,
    raw: bytes,
    idempotency_key: str | None,
    webhook_url: str | None,
    payment: Presented | None,
) -> JobRecord:
    """Admit with the account's credit, or (no tenant) with an x402 payment."""
    spec = _spec(op, raw)
    idem = (idempotency_key, body_hash(raw)) if idempotency_key else None
    try:
        if tenant is None:
            return admit_paid(ctx, spec, payment, f"/v1/image/{op}")
        return admit_job(ctx, tenant, spec, idem, webhook_url)[0]
    except FleetError as exc:
        raise FleetError(
            exc.code, caller_message(op, exc.message), exc.details, exc.headers
        ) from None


def _envelope(ctx: Context, record: JobRecord) -> dict[str, Any]:
    result = dict(record.result or {})
    if "output" not in result:  # facts only: metadata, dominant-color, ocr
        return {"job": record.id, **result}
    storage_key = tenant_key(record.tenant, result["output"])
    envelope = {
        "job": record.id,
        "output": result["output"],
        "format": result["format"],
        "contentType": f"image/{result['format']}",
        "bytes": result["bytes"],
        "width": result["width"],
        "height": result["height"],
    }
    if result["bytes"] <= ctx.settings.max_inline_bytes:
        envelope["inline"] = base64.b64encode(ctx.objects.get(storage_key)).decode()
    else:
        url, expires = signed_url(ctx, "GET", storage_key, ctx.settings.signed_url_seconds)
        envelope["outputUrl"] = url
        envelope["expiresAt"] = datetime.fromtimestamp(expires, UTC).isoformat()
    return envelope


async def run_image_op(request: Request) -> Response:
    ctx = context(request)
    paid = paying(request, ctx)  # no API key, x402 on: the caller pays per call
    tenant = None if paid else await authenticate(request)
    if paid:
        await limit_keyless(request, ctx)
    op = request.path_params["op"]
    if op not in OPERATIONS:
        raise FleetError(ErrorCode.NOT_FOUND, f"no operation {op!r}; see GET /v1/operations")
    raw = await read_body(request, ctx.settings.max_inline_bytes * 4 // 3 + 64 * 1024)
    presented = payment_of(request)
    try:
        record = await run_in_threadpool(
            _admit,
            ctx,
            tenant,
            op,
            raw,
            request.headers.get("idempotency-key"),
            None if paid else request.state.account.webhook_url,
            presented,
        )
    except Unpaid as unpaid:
        return unpaid.response()
    del raw  # the wait below holds the request, not its body
    done_with_body(request)
    ended = await wait_for_end(ctx, record.id, ctx.settings.sync_timeout)
    if ended is None or not ended.status.terminal:  # still running: poll the job instead
        return JSONResponse(
            {"job": record.id, "status": "running"},
            status_code=202,
            headers={"Location": f"/v1/jobs/{record.id}"},
        )
    if ended.status != JobStatus.SUCCEEDED:
        error = (
            (ended.error.code, ended.error.message)
            if ended.error
            else (ErrorCode.JOB_ENDED.value, "the job was canceled")
        )
        status = HTTP_STATUS.get(ErrorCode(error[0]), 422) if ended.error else 409
        return JSONResponse(
            {"error": {"code": error[0], "message": caller_message(op, error[1])}, "job": ended.id},
            status_code=status,
        )
    headers = {}
    if paid and presented is not None:  # the output is handed over once the payment settled
        answer = await run_in_threadpool(settlement, ctx, ended.id)
        if answer is None or not answer.success:
            reason = answer.error_reason if answer else "the settlement did not complete"
            return JSONResponse(
                {
                    "error": {"code": "PAYMENT_REQUIRED", "message": f"not settled: {reason}"},
                    "job": ended.id,
                },
                status_code=402,
                headers=settled_headers(answer, presented),
            )
        headers = settled_headers(answer, presented)
    return JSONResponse(await run_in_threadpool(_envelope, ctx, ended), headers=headers)
