"""`POST /v1/uploads` (a URL to PUT an input to) and the gateway's own signed URLs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import authenticate, context
from gateway.http import JSONResponse, read_body
from gateway.signing import signed_url, verify
from jobs.errors import ErrorCode, FleetError
from storage import ObjectNotFound, tenant_key


async def create_upload(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    input_key = f"uploads/{secrets.token_urlsafe(12)}"
    url, expires = await run_in_threadpool(signed_url, ctx, "PUT", tenant_key(tenant, input_key),
                                           ctx.settings.signed_url_seconds)
    return JSONResponse({"inputKey": input_key, "uploadUrl": url,
                         "expiresAt": datetime.fromtimestamp(expires, UTC).isoformat(),
                         "maxBytes": ctx.settings.max_object_bytes}, status_code=201)


def _query(request: Request) -> tuple[str, str]:
    return request.query_params.get("expires", ""), request.query_params.get("sig", "")


async def signed_put(request: Request) -> JSONResponse:
    ctx = context(request)
    storage_key = verify(ctx, "PUT", request.path_params["token"], *_query(request))
    data = await read_body(request, ctx.settings.max_object_bytes)
    await run_in_threadpool(ctx.objects.put, storage_key, data,
                            request.headers.get("content-type") or "application/octet-stream")
    return JSONResponse({"bytes": len(data)}, status_code=201)


async def signed_get(request: Request) -> Response:
    ctx = context(request)
    storage_key = verify(ctx, "GET", request.path_params["token"], *_query(request))
    try:
        data = await run_in_threadpool(ctx.objects.get, storage_key)
    except ObjectNotFound:
        raise FleetError(ErrorCode.NOT_FOUND, "this link is invalid or has expired") from None
    return Response(data, media_type="application/octet-stream")
