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

from gateway.context import Context, authenticate, context
from gateway.http import JSONResponse
from jobs.prices import configured, describe
from jobs.records import INTERNAL_FIELDS, JobRecord
from jobs.registry import OPERATIONS, AnyJobSpec
from worker.celery_app import app as celery_app


@functools.cache
def _operations(prices: tuple[tuple[str, int], ...]) -> bytes:
    """The catalogue, encoded once per price list: its schemas take ~14 ms to build."""
    overrides = dict(prices)
    return msgspec.json.encode(
        {
            "operations": [
                {
                    "name": op.name,
                    "queue": op.queue,
                    "price": describe(configured(op.name, op.billing, overrides)),
                    "schema": msgspec.json.schema(op.spec),
                }
                for op in OPERATIONS.values()
            ]
        }
    )


async def list_operations(request: Request) -> Response:
    await authenticate(request)
    prices = tuple(sorted(context(request).settings.prices.items()))
    return Response(_operations(prices), media_type="application/json")


class ErrorBody(msgspec.Struct):
    code: str
    message: str


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


def _reply(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {media: {"schema": schema}}
    return body


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, with schemas generated from the msgspec structs; every route of
    gateway/app.py is here (a test checks)."""
    (spec_ref, job_ref, error_ref), components = msgspec.json.schema_components(
        [AnyJobSpec, JobRecord, ErrorEnvelope], ref_template="#/components/schemas/{name}"
    )
    job_schema = components["JobRecord"]
    for internal in INTERNAL_FIELDS:
        job_schema["properties"].pop(internal, None)
    job_schema["required"] = [f for f in job_schema.get("required", []) if f not in INTERNAL_FIELDS]
    errors = {
        str(s): _reply(d, error_ref)
        for s, d in [
            (400, "VALIDATION_ERROR, with the field path"),
            (401, "UNAUTHORIZED"),
            (402, "PAYMENT_REQUIRED"),
            (404, "NOT_FOUND"),
            (409, "JOB_ENDED or a conflict"),
            (413, "PAYLOAD_TOO_LARGE"),
            (422, "a documented semantic error"),
            (429, "RATE_LIMITED, with Retry-After"),
            (503, "UNAVAILABLE, with Retry-After"),
        ]
    }
    job_id = _path_param("job_id")
    anything = {"type": "object"}
    public = {"security": []}
    return {
        "openapi": "3.1.0",
        "info": {"title": "imagefleet", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a job (Idempotency-Key honoured)",
                    "parameters": [_query("wait", "number")],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": spec_ref}},
                    },
                    "responses": {
                        "202": _reply("queued", job_ref),
                        "200": _reply("ended", job_ref),
                        **errors,
                    },
                },
                "get": {
                    "summary": "Your jobs, newest first",
                    "parameters": [
                        _query("status", "string"),
                        _query("limit", "integer"),
                        _query("cursor", "string"),
                    ],
                    "responses": {"200": _reply("jobs and the next cursor", anything), **errors},
                },
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "summary": "A job",
                    "parameters": [job_id],
                    "responses": {"200": _reply("the job", job_ref), **errors},
                },
                "delete": {
                    "summary": "Cancel a queued or running job",
                    "parameters": [job_id],
                    "responses": {"200": _reply("the canceled job", job_ref), **errors},
                },
            },
            "/v1/jobs/{job_id}/events": {
                "get": {
                    "summary": "Server-sent events: one per state change until the job ends",
                    "parameters": [job_id],
                    "responses": {
                        "200": _reply("text/event-stream", {"type": "string"}, "text/event-stream"),
                        **errors,
                    },
                }
            },
            "/v1/jobs/{job_id}/webhook/redeliver": {
                "post": {
                    "summary": "Send an ended job's webhook again",
                    "parameters": [job_id],
                    "responses": {"202": _reply("queued for delivery", anything), **errors},
                }
            },
            "/v1/image/{op}": {
                "post": {
                    "summary": "Run one operation synchronously on the request body's image",
                    "parameters": [_path_param("op")],
                    "requestBody": {"content": {"application/octet-stream": {}}},
                    "responses": {
                        "200": _reply(
                            "the output image", {"type": "string"}, "application/octet-stream"
                        ),
                        "202": _reply("still running: the job", job_ref),
                        **errors,
                    },
                }
            },
            "/v1/uploads": {
                "post": {
                    "summary": "A presigned upload URL and its inputKey",
                    "responses": {"201": _reply("the upload", anything), **errors},
                }
            },
            "/v1/signed/{token}": {
                "put": {
                    **public,
                    "summary": "Upload through a signed URL",
                    "parameters": [_path_param("token")],
                    "responses": {"201": _reply("stored"), **errors},
                },
                "get": {
                    **public,
                    "summary": "Download through a signed URL",
                    "parameters": [_path_param("token")],
                    "responses": {"200": _reply("the bytes"), **errors},
                },
            },
            "/v1/objects/{key}": {
                "put": {
                    "summary": "Upload an object",
                    "parameters": [_path_param("key")],
                    "requestBody": {"content": {"application/octet-stream": {}}},
                    "responses": {"201": _reply("stored"), **errors},
                },
                "get": {
                    "summary": "Download an object",
                    "parameters": [_path_param("key")],
                    "responses": {"200": _reply("the bytes"), **errors},
                },
            },
            "/v1/usage": {
                "get": {
                    "summary": "Balance, holds and ledger entries",
                    "parameters": [_query("from", "number"), _query("to", "number")],
                    "responses": {"200": _reply("usage", anything), **errors},
                }
            },
            "/v1/operations": {
                "get": {
                    "summary": "Operations, schemas and prices",
                    "responses": {"200": _reply("operations", anything)},
                }
            },
            "/openapi.json": {"get": {**public, "responses": {"200": _reply("this document")}}},
            "/metrics": {"get": {**public, "responses": {"200": _reply("Prometheus text")}}},
            "/livez": {"get": {**public, "responses": {"200": _reply("the process answers")}}},
            "/healthz": {
                "get": {
                    **public,
                    "responses": {
                        "200": _reply("can serve: Redis answers"),
                        "503": _reply("Redis does not answer (load balancers: take it out)"),
                    },
                }
            },
            "/readyz": {
                "get": {**public, "responses": {"200": _reply("ready"), "503": _reply("not ready")}}
            },
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


HEALTH_TIMEOUT = 1.0  # seconds a Redis PING may take before /healthz says 503


async def livez(request: Request) -> JSONResponse:
    """The process answers (restart it if not); says nothing about what it depends on."""
    return JSONResponse({"status": "ok"})


async def healthz(request: Request) -> JSONResponse:
    """For load balancers: this gateway can serve, i.e. its Redis (the master, on
    Sentinel) answers a PING within HEALTH_TIMEOUT. Cheap enough to probe every second;
    /readyz checks storage and the worker pools too, and takes longer."""
    try:
        await asyncio.wait_for(context(request).aredis.ping(), HEALTH_TIMEOUT)
    except (redis.RedisError, OSError, TimeoutError) as exc:
        return JSONResponse(
            {"status": "unavailable", "redis": f"down: {type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
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
