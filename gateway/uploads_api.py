"""`POST /v1/uploads` (a single-use URL to PUT an input to) and the gateway's signed URLs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from billing.header import header_of_bytes
from gateway.bodies import SignedUpload, Upload
from gateway.context import authenticate, context
from gateway.http import JSONResponse
from gateway.objects_api import object_response, store_body
from gateway.signing import claim_upload, release_upload, upload_url, verify
from jobs.errors import ErrorCode, FleetError
from jobs.media import written_media_type
from storage import ObjectNotFound, tenant_key


async def create_upload(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    input_key = f"uploads/{secrets.token_urlsafe(12)}"
    url, expires = await run_in_threadpool(
        upload_url, ctx, tenant_key(tenant, input_key), ctx.settings.signed_url_seconds
    )
    return JSONResponse(
        Upload(input_key, url, datetime.fromtimestamp(expires, UTC), ctx.settings.max_object_bytes),
        status_code=201,
    )


def _query(request: Request) -> tuple[str, str]:
    return request.query_params.get("expires", ""), request.query_params.get("sig", "")


async def signed_put(request: Request) -> JSONResponse:
    ctx = context(request)
    expires, sig = _query(request)
    # Claimed before the body is read: of racing PUTs exactly one streams, the rest get 409.
    storage_key = await run_in_threadpool(
        claim_upload, ctx, request.path_params["token"], expires, sig
    )
    try:
        size = await store_body(
            request, storage_key, request.headers.get("content-type") or "application/octet-stream"
        )
    except BaseException:
        with anyio.CancelScope(shield=True):  # give the claim back even when cancelled
            await run_in_threadpool(release_upload, ctx, sig)
        raise
    return JSONResponse(SignedUpload(size), status_code=201)


async def signed_get(request: Request) -> Response:
    ctx = context(request)
    storage_key = await run_in_threadpool(
        verify, ctx, "GET", request.path_params["token"], *_query(request)
    )
    try:
        data = await run_in_threadpool(ctx.objects.get, storage_key)
    except ObjectNotFound:
        raise FleetError(ErrorCode.NOT_FOUND, "this link is invalid or has expired") from None
    return object_response(data, await run_in_threadpool(media_type_of, data))


def media_type_of(data: bytes) -> str:
    """What a signed link's object is, read from its bytes (a key may name another format):
    the media type of a format the fleet writes, else application/octet-stream."""
    header = header_of_bytes(data)
    return written_media_type(header.format if header else None) or "application/octet-stream"
