"""Routes about the service itself: operations, OpenAPI, liveness and readiness."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from billing.prices import configured, describe
from gateway.context import Context, authenticate, context
from gateway.http import JSONResponse
from jobs.records import JobRecord
from jobs.registry import OPERATIONS, AnyJobSpec
from worker.celery_app import app as celery_app


@functools.cache
def _operations(prices: tuple[tuple[str, int], ...]) -> bytes:
    """The catalogue, encoded once per price list: its schemas take ~14 ms to build."""
    overrides = dict(prices)
    return msgspec.json.encode({"operations": [
        {"name": op.name, "queue": op.queue,
         "price": describe(configured(op.name, op.billing, overrides)),
         "schema": msgspec.json.schema(op.spec)}
        for op in OPERATIONS.values()
    ]})


async def list_operations(request: Request) -> Response:
    await authenticate(request)
    prices = tuple(sorted(context(request).settings.prices.items()))
    return Response(_operations(prices), media_type="application/json")


class ErrorBody(msgspec.Struct):
    code: str
    message: str


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, with schemas generated from the msgspec structs."""
    (spec_ref, job_ref, error_ref), components = msgspec.json.schema_components(
        [AnyJobSpec, JobRecord, ErrorEnvelope], ref_template="#/components/schemas/{name}")
    job_schema = components["JobRecord"]
    job_schema["properties"].pop("tenant", None)
    job_schema["required"] = [f for f in job_schema.get("required", []) if f != "tenant"]

    def reply(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    errors = {str(s): reply(d, error_ref) for s, d in [
        (400, "VALIDATION_ERROR, with the field path"), (401, "UNAUTHORIZED"),
        (404, "NOT_FOUND"), (413, "PAYLOAD_TOO_LARGE"), (503, "UNAVAILABLE")]}
    key_param = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "imagefleet", "version": "1"},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {"post": {
                "summary": "Submit a job",
                "parameters": [{"name": "wait", "in": "query", "schema": {"type": "number"}}],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": spec_ref}}},
                "responses": {"202": reply("queued", job_ref), "200": reply("ended", job_ref),
                              **errors}}},
            "/v1/jobs/{job_id}": {"get": {
                "summary": "A job",
                "parameters": [{"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": reply("the job", job_ref), **errors}}},
            "/v1/objects/{key}": {
                "put": {"summary": "Upload an object", "parameters": [key_param],
                        "requestBody": {"content": {"application/octet-stream": {}}},
                        "responses": {"201": {"description": "stored"}, **errors}},
                "get": {"summary": "Download an object", "parameters": [key_param],
                        "responses": {"200": {"description": "the bytes"}, **errors}}},
            "/v1/operations": {"get": {"summary": "Operations, schemas and prices",
                                       "responses": {"200": {"description": "operations"}}}},
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"security": [], "responses": {
                "200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


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
