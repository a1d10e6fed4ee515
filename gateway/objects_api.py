"""`PUT` / `GET /v1/objects/{key}`: the caller's namespace only."""

from __future__ import annotations

import mimetypes

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import authenticate, context
from gateway.http import JSONResponse, read_body
from jobs.errors import ErrorCode, FleetError
from storage import InvalidKey, ObjectNotFound, normalize_key, tenant_key


def _key(request: Request) -> str:
    try:
        return normalize_key(request.path_params["key"])
    except InvalidKey as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, f"{exc} - at `key`") from None


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


async def put_object(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    key = _key(request)
    data = await read_body(request, ctx.settings.max_object_bytes)
    if not data:
        raise FleetError(ErrorCode.VALIDATION_ERROR, "the body is empty; send the object's bytes")
    content_type = request.headers.get("content-type") or _content_type(key)
    await run_in_threadpool(ctx.objects.put, tenant_key(tenant, key), data, content_type)
    return JSONResponse(
        {"key": key, "bytes": len(data), "url": f"{ctx.settings.public_url}/v1/objects/{key}"},
        status_code=201,
    )


async def get_object(request: Request) -> Response:
    tenant = await authenticate(request)
    key = _key(request)
    try:
        data = await run_in_threadpool(context(request).objects.get, tenant_key(tenant, key))
    except ObjectNotFound:
        raise FleetError(ErrorCode.NOT_FOUND, f"no object {key!r}") from None
    return Response(data, media_type=_content_type(key))
