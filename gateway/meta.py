"""Routes about the service itself: operations, OpenAPI, liveness and readiness."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import msgspec
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.bodies import Health, OperationInfo, Operations, Price
from gateway.context import Context, authenticate, context
from gateway.http import JSONResponse
from imagefleet.dispatch import app as celery_app
from jobs.prices import configured, describe
from jobs.registry import OPERATIONS


@functools.cache
def _operations(prices: tuple[tuple[str, int], ...], ceiling: float) -> bytes:
    """The catalogue, encoded once per price list: its schemas take ~14 ms to build."""
    overrides = dict(prices)
    return msgspec.json.encode(
        Operations(
            [
                OperationInfo(
                    op.name,
                    op.queue,
                    msgspec.convert(
                        describe(configured(op.name, op.billing, overrides, ceiling)), Price
                    ),
                    msgspec.json.schema(op.spec),
                )
                for op in OPERATIONS.values()
            ]
        )
    )


async def list_operations(request: Request) -> Response:
    await authenticate(request)
    settings = context(request).settings
    prices = tuple(sorted(settings.prices.items()))
    return Response(
        _operations(prices, settings.flat_price_max_megapixels), media_type="application/json"
    )


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


HEALTH_TIMEOUT = 1.0  # seconds a Redis PING may take before /healthz says 503


async def livez(request: Request) -> JSONResponse:
    """The process answers (restart it if not); says nothing about what it depends on."""
    return JSONResponse(Health("ok"))


async def healthz(request: Request) -> JSONResponse:
    """For load balancers: this gateway can serve, i.e. its Redis (the master, on
    Sentinel) answers a PING within HEALTH_TIMEOUT. Cheap enough to probe every second;
    /readyz checks storage and the worker pools too, and takes longer."""
    try:
        await asyncio.wait_for(context(request).aredis.ping(), HEALTH_TIMEOUT)
    except (redis.RedisError, OSError, TimeoutError) as exc:
        return JSONResponse(
            Health("unavailable", redis=f"down: {type(exc).__name__}"),
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse(Health("ok"))


def _readiness(ctx: Context) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        checks["redis"] = bool(ctx.redis.ping())
    except Exception as exc:
        checks["redis"] = f"down: {exc}"
    try:
        ctx.objects.check()
        checks["storage"] = True
    except Exception as exc:
        checks["storage"] = f"down: {exc}"
    consumers = {q: 0 for q in sorted({op.queue for op in OPERATIONS.values()})}
    try:
        replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
        for queues in replies.values():
            for q in queues:
                if q["name"] in consumers:
                    consumers[q["name"]] += 1
    except Exception:  # the broker check above already reports why
        pass
    checks["pools"] = consumers
    ready = checks["redis"] is True and checks["storage"] is True and all(consumers.values())
    return ready, checks


async def readyz(request: Request) -> JSONResponse:
    ready, checks = await run_in_threadpool(_readiness, context(request))
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
