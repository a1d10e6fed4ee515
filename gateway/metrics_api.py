"""`GET /metrics` (Prometheus): the gateway's requests and latency by route and code, plus
the fleet's metrics held in Redis (jobs by state, job durations, failures, queue depth)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import context
from imagefleet import metrics

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "imagefleet_http_requests_total",
    "Gateway requests by route and code.",
    ["method", "route", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "imagefleet_http_request_seconds",
    "Gateway request latency by route.",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route *template*."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def record_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


async def metrics_endpoint(request: Request) -> Response:
    ctx = context(request)
    fleet = await run_in_threadpool(
        metrics.render, ctx.redis, ctx.settings.broker_url.startswith("redis")
    )
    return Response(
        generate_latest(REGISTRY).decode() + fleet, media_type="text/plain; version=0.0.4"
    )
