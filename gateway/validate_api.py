"""`POST /v1/jobs/validate`: a job spec checked as `POST /v1/jobs` checks it before it reads
any input (its fields, the operator's limits, the output key, the webhook address, the shape
of its input keys), and nothing more: nothing is stored, held, charged or queued, and the
inputs need not exist yet. The console checks a spec so before it uploads the image."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.admission import checked_spec
from gateway.bodies import Validated
from gateway.context import authenticate, context
from gateway.http import JSONResponse, read_body
from gateway.keys import checked_key
from gateway.services import Context
from jobs.errors import ErrorCode, FleetError
from jobs.registry import decode_spec, operation_of


def _validated(ctx: Context, body: bytes) -> Validated:
    try:
        spec = decode_spec(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    spec = checked_spec(ctx, spec)
    limit = ctx.settings.max_inline_bytes
    for path, source in spec.sources():
        if isinstance(source, str):
            checked_key(source, path)
        elif source.input_key is not None:
            checked_key(source.input_key, f"{path}.inputKey")
        elif len(source.inline or b"") > limit:
            raise FleetError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"inline input is over the {limit}-byte limit - at `{path}.inline`",
            )
    return Validated(True, operation_of(spec).name)


async def validate_job(request: Request) -> JSONResponse:
    await authenticate(request)
    ctx = context(request)
    body = await read_body(request, ctx.settings.max_inline_bytes * 4 // 3 + 64 * 1024)
    return JSONResponse(await run_in_threadpool(_validated, ctx, body))
