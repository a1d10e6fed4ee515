"""The ASGI app: routes, and errors turned into `{"error": {code, message}}` bodies."""

from __future__ import annotations

import logging

import redis
from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import (
    batches_api,
    console_api,
    events_api,
    jobs_api,
    meta,
    metrics_api,
    objects_api,
    openapi,
    pools_api,
    sync_api,
    uploads_api,
    usage_api,
    validate_api,
)
from gateway.buffers import BodyBudget
from gateway.context import Context
from gateway.http import JSONResponse, error_response
from gateway.openapi_x402 import with_x402
from imagefleet.settings import Settings, settings
from jobs.errors import ErrorCode, FleetError

log = logging.getLogger("imagefleet.gateway")

_STATUS_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.VALIDATION_ERROR}


async def _fleet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FleetError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.VALIDATION_ERROR)
    return JSONResponse(
        {"error": {"code": code.value, "message": str(exc.detail)}}, status_code=exc.status_code
    )


def _unavailable(exc: Exception) -> JSONResponse:
    return error_response(
        FleetError(
            ErrorCode.UNAVAILABLE,
            f"a backing service failed ({type(exc).__name__}); retry",
            headers={"Retry-After": "2"},
        )
    )


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    """Redis away (a restart, a failover): one warning line per request, and 503. Handled
    here, beside the routes, and not by the catch-all below: Starlette re-raises what the
    catch-all handled, and the server would log a second, ERROR traceback for it."""
    log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable(exc)


class _CatchAll:
    """Other failures (S3 down, a bug) are "try again" too, not a bare 500, logged once. A
    middleware rather than an `Exception` handler: Starlette re-raises what such a handler
    answered, and the server then logs the same failure again as an ERROR traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:  # else the client sees the connection end mid-response
                await _unavailable(exc)(scope, receive, send)


class _Key(PathConvertor):
    """An object key: `path`, line breaks included, so such a key is refused (400) by the
    route rather than matching none (404)."""

    regex = "(?s:.*)"


register_url_convertor("key", _Key())

ROUTES = [
    Route("/v1/jobs", jobs_api.submit_job, methods=["POST"]),
    Route("/v1/jobs", jobs_api.list_jobs, methods=["GET"]),
    Route("/v1/jobs/validate", validate_api.validate_job, methods=["POST"]),
    Route("/v1/usage", usage_api.usage, methods=["GET"]),
    Route("/v1/image/{op}", sync_api.run_image_op, methods=["POST"]),
    Route("/v1/uploads", uploads_api.create_upload, methods=["POST"]),
    # The image-tools spec's name for it (seeds/004): the same route, the same answer.
    Route("/v1/cputools/upload-url", uploads_api.create_upload, methods=["POST"]),
    Route("/v1/signed/{token}", uploads_api.signed_put, methods=["PUT"]),
    Route("/v1/signed/{token}", uploads_api.signed_get, methods=["GET"]),
    Route("/v1/jobs/{job_id}", jobs_api.get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", jobs_api.cancel_job, methods=["DELETE"]),
    Route("/v1/jobs/{job_id}/webhook/redeliver", jobs_api.redeliver_webhook, methods=["POST"]),
    Route("/v1/jobs/{job_id}/events", events_api.job_events, methods=["GET"]),
    Route("/v1/batches", batches_api.submit_batch, methods=["POST"]),
    Route("/v1/batches/{batch_id}", batches_api.get_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/events", batches_api.batch_events, methods=["GET"]),
    Route("/v1/objects/{key:key}", objects_api.put_object, methods=["PUT"]),
    Route("/v1/objects/{key:key}", objects_api.get_object, methods=["GET"]),
    Route("/v1/operations", meta.list_operations, methods=["GET"]),
    Route("/v1/pools", pools_api.list_pools, methods=["GET"]),
    Route("/openapi.json", meta.openapi, methods=["GET"]),
    Route("/healthz", meta.healthz, methods=["GET"]),
    Route("/livez", meta.livez, methods=["GET"]),
    Route("/readyz", meta.readyz, methods=["GET"]),
    Route("/metrics", metrics_api.metrics_endpoint, methods=["GET"]),
    Route("/console", console_api.console_page, methods=["GET"]),
    Route("/console/{file}", console_api.console_file, methods=["GET"]),
]


def create_app(cfg: Settings | None = None) -> Starlette:
    cfg = cfg or settings()
    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            FleetError: _fleet_error,
            HTTPException: _http_error,
            redis.ConnectionError: _redis_down,
            redis.TimeoutError: _redis_down,
        },
        middleware=[
            Middleware(_CatchAll),
            Middleware(metrics_api.RequestMetrics),
            Middleware(BodyBudget, limit=cfg.max_buffered_bytes),
        ],
    )
    app.state.context = Context.build(cfg)
    app.state.openapi = with_x402(openapi.openapi_document(cfg), cfg)
    return app
