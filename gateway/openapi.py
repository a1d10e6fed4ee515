"""`GET /openapi.json`: the OpenAPI 3.1 document of every route in gateway/app.py (a test
checks), its schemas generated from structs: the job specs of jobs/registry.py, the job record
and the bodies of gateway/bodies.py. OpenAPI 3.1 takes msgspec's JSON Schema (2020-12) as is.
tests/test_openapi.py validates it and runs schemathesis against a live gateway."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from gateway import bodies, pools_api
from gateway.openapi_batches import batch_paths
from gateway.openapi_console import console_paths
from gateway.openapi_parts import AUTHED as _AUTHED
from gateway.openapi_parts import REF as _REF
from gateway.openapi_parts import RETRY_AFTER as _RETRY_AFTER
from gateway.openapi_parts import errors as _errors
from gateway.openapi_parts import event as _event
from gateway.openapi_parts import json_reply as _json
from gateway.openapi_parts import param as _param
from gateway.sync_api import CROP_RECT, FILE_FIELD
from gateway.usage_api import LATEST
from imagefleet.settings import Settings
from jobs.records import INTERNAL_FIELDS, JobRecord, JobStatus
from jobs.registry import OPERATIONS, AnyJobSpec

_STRUCTS = {
    "job": JobRecord,
    "jobs": bodies.JobList,
    "error": bodies.ErrorEnvelope,
    "redelivery": bodies.Redelivery,
    "sync": bodies.SyncOutput,
    "running": bodies.SyncRunning,
    "upload": bodies.Upload,
    "validated": bodies.Validated,
    "stored": bodies.StoredObject,
    "signed": bodies.SignedUpload,
    "usage": bodies.Usage,
    "operations": bodies.Operations,
    "pools": pools_api.Pools,
    "health": bodies.Health,
    "readiness": bodies.Readiness,
    "batch": bodies.Batch,
    "batch_accepted": bodies.BatchAccepted,
}
_BYTES: dict[str, Any] = {"type": "string", "contentMediaType": "application/octet-stream"}


def _job_schema(components: dict[str, Any]) -> None:
    """The API's job is the record without its owner and internals (JobRecord.public())."""
    job = components["JobRecord"]
    for internal in INTERNAL_FIELDS:
        job["properties"].pop(internal, None)
    job["required"] = [f for f in job.get("required", []) if f not in INTERNAL_FIELDS]


def _prune(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop the schemas nothing refers to any more (those only internal fields used)."""
    schemas = doc["components"]["schemas"]
    while True:
        text = msgspec.json.encode(doc).decode()
        unused = [n for n in schemas if f'"{_REF.format(name=n)}"' not in text]
        if not unused:
            return doc
        for name in unused:
            del schemas[name]


def _sync_body(spec_schema: dict[str, Any], op: str) -> dict[str, Any]:
    """A job spec's schema as `POST /v1/image/{op}` takes it (gateway/sync_api.py): no
    `operation` (the path names it), `file` for `input`, and crop's rect as `left`/`top`
    beside `width`/`height`."""
    body = copy.deepcopy(spec_schema)
    props = body.get("properties", {})
    props.pop("operation", None)
    required = [f for f in body.get("required", []) if f != "operation"]
    caller, spec = FILE_FIELD
    if spec in props:
        props[caller] = props.pop(spec)
        required = [caller if f == spec else f for f in required]
    if op == "crop":
        for side in CROP_RECT.keys() - props.keys():  # left, top beside width, height
            props[side] = {"type": "integer", "minimum": 0}
    body["required"] = required
    body["title"] = op
    return body


def openapi_document(cfg: Settings) -> dict[str, Any]:
    structs = list(_STRUCTS.values())
    specs = [op.spec for op in OPERATIONS.values()]
    refs, components = msgspec.json.schema_components(
        [AnyJobSpec, *specs, *structs], ref_template=_REF
    )
    spec_ref, spec_refs, ref = (
        refs[0],
        refs[1 : 1 + len(specs)],
        dict(zip(_STRUCTS, refs[1 + len(specs) :], strict=True)),
    )
    sync_bodies = [
        _sync_body(components[r["$ref"].rsplit("/", 1)[1]], name)
        for name, r in zip(OPERATIONS, spec_refs, strict=True)
    ]
    _job_schema(components)
    return _prune(
        {
            "openapi": "3.1.0",
            "info": {"title": "imagefleet", "version": "1"},
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
            "paths": _paths(cfg, ref, spec_ref, sync_bodies),
        }
    )


def _paths(
    cfg: Settings, ref: dict[str, Any], spec_ref: dict[str, Any], sync_bodies: list[dict]
) -> dict[str, Any]:
    job_id = _param("path", "job_id", {"type": "string"})
    location = {"description": "the job's URL", "schema": {"type": "string"}, "required": True}
    replayed = {
        "description": "`true` when an Idempotency-Key gave back an earlier job",
        "schema": {"type": "string", "enum": ["true"]},
    }
    public: dict[str, Any] = {"security": []}
    unix_or_iso = {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": LATEST},
            {"type": "string", "format": "date-time"},
        ]
    }
    upload = {
        "summary": "A single-use URL to PUT one input to, and its inputKey",
        "responses": {"201": _json("the upload URL", ref["upload"]), **_errors(*_AUTHED)},
    }
    return {
        "/v1/jobs/validate": {
            "post": {
                "summary": "Check a job spec as submitting it would, before reading any input;"
                " nothing is stored, charged or queued",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": spec_ref}},
                },
                "responses": {
                    "200": _json("the spec would be accepted", ref["validated"]),
                    **_errors(400, *_AUTHED, 413),
                },
            }
        },
        "/v1/jobs": {
            "post": {
                "summary": "Submit a job",
                "parameters": [
                    _param(
                        "query",
                        "wait",
                        {"type": "number", "minimum": 0, "maximum": cfg.max_wait_seconds},
                        "seconds to wait for the job to end: 200 if it did, else 202",
                    ),
                    _param(
                        "header",
                        "Idempotency-Key",
                        {"type": "string", "maxLength": 255},
                        "the same key and body give back the same job for 24 h",
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": spec_ref}},
                },
                "responses": {
                    "200": _json("ended within `?wait`", ref["job"], Location=location),
                    "202": _json(
                        "accepted: queued, or not ended within `?wait`",
                        ref["job"],
                        Location=location,
                        **{"Idempotent-Replayed": replayed},
                    ),
                    **_errors(400, *_AUTHED, 402, 404, 409, 413, 422),
                },
            },
            "get": {
                "summary": "Your jobs, newest first",
                "parameters": [
                    _param(
                        "query", "status", {"type": "string", "enum": [s.value for s in JobStatus]}
                    ),
                    _param("query", "limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _param(
                        "query", "cursor", {"type": "integer"}, "`next_cursor` of the last page"
                    ),
                ],
                "responses": {
                    "200": _json("a page of jobs", ref["jobs"]),
                    **_errors(400, *_AUTHED),
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "A job",
                "parameters": [job_id],
                "responses": {"200": _json("the job", ref["job"]), **_errors(*_AUTHED, 404)},
            },
            "delete": {
                "summary": "Cancel a queued or running job",
                "parameters": [job_id],
                "responses": {
                    "200": _json("the canceled job", ref["job"]),
                    **_errors(*_AUTHED, 404, 409),
                },
            },
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "summary": "Server-sent events: one per state change until the job ends",
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "events named after the job's status, each `data` a job",
                        "content": {"text/event-stream": {"schema": _event(ref["job"])}},
                    },
                    **_errors(*_AUTHED, 404),
                },
            }
        },
        "/v1/jobs/{job_id}/webhook/redeliver": {
            "post": {
                "summary": "Send an ended job's webhook again",
                "parameters": [job_id],
                "responses": {
                    "202": _json("queued for delivery", ref["redelivery"]),
                    **_errors(400, *_AUTHED, 404),
                },
            }
        },
        **batch_paths(cfg, ref, spec_ref, _errors, _AUTHED),
        "/v1/image/{op}": {
            "post": {
                "summary": "Run one operation and wait for its output",
                "description": "The body is the operation's job spec without `operation`,"
                " `file` for `input` (crop: `left`/`top` with `width`/`height` for `rect`)."
                " A job that fails answers with its error code's status.",
                "parameters": [
                    _param("path", "op", {"type": "string", "enum": list(OPERATIONS)}),
                    _param("header", "Idempotency-Key", {"type": "string", "maxLength": 255}),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"anyOf": sync_bodies}}},
                },
                "responses": {
                    "200": _json("the job succeeded", ref["sync"]),
                    "202": _json(
                        "still running after the sync timeout: poll the job",
                        ref["running"],
                        Location=location,
                    ),
                    **_errors(400, *_AUTHED, 402, 404, 409, 413, 422),
                },
            }
        },
        "/v1/uploads": {"post": upload},
        "/v1/cputools/upload-url": {
            "post": {**upload, "summary": "The image-tools spec's name of `POST /v1/uploads`"}
        },
        "/v1/signed/{token}": {
            "parameters": [
                _param("path", "token", {"type": "string"}),
                {**_param("query", "expires", {"type": "integer"}), "required": True},
                {**_param("query", "sig", {"type": "string"}), "required": True},
            ],
            "put": {
                **public,
                "summary": "Upload through a signed URL (one PUT per URL)",
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": _BYTES}},
                },
                "responses": {
                    "201": _json("stored", ref["signed"]),
                    **_errors(400, 404, 409, 413, 503),
                },
            },
            "get": {
                **public,
                "summary": "Download through a signed URL",
                "responses": {
                    "200": {
                        "description": "the bytes, typed by their format (application/"
                        "octet-stream for any but those the fleet writes)",
                        "content": {"*/*": {"schema": _BYTES}},
                    },
                    **_errors(404, 503),
                },
            },
        },
        "/v1/objects/{key}": {
            "parameters": [_param("path", "key", {"type": "string"}, "may contain `/`")],
            "put": {
                "summary": "Upload an object (its Content-Type is kept)",
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": _BYTES}},
                },
                "responses": {
                    "201": _json("stored", ref["stored"]),
                    **_errors(400, *_AUTHED, 413),
                },
            },
            "get": {
                "summary": "Download an object",
                "responses": {
                    "200": {
                        "description": "the bytes, typed by the key's extension",
                        "content": {"*/*": {"schema": _BYTES}},
                    },
                    **_errors(400, *_AUTHED, 404),
                },
            },
        },
        "/v1/usage": {
            "get": {
                "summary": "Balance, open holds and charges per operation over a time range",
                "parameters": [
                    _param(
                        "query",
                        "from",
                        unix_or_iso,
                        "unix seconds or ISO 8601; default `to` - 30 days",
                    ),
                    _param("query", "to", unix_or_iso, "unix seconds or ISO 8601; default now"),
                ],
                "responses": {"200": _json("usage", ref["usage"]), **_errors(400, *_AUTHED)},
            }
        },
        "/v1/operations": {
            "get": {
                "summary": "Operations, their job spec schemas and prices",
                "responses": {
                    "200": _json("the operations", ref["operations"]),
                    **_errors(*_AUTHED),
                },
            }
        },
        **console_paths(ref, _errors, _AUTHED),
        "/openapi.json": {
            "get": {**public, "responses": {"200": _json("this document", {"type": "object"})}}
        },
        "/metrics": {
            "get": {
                **public,
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(503),
                },
            }
        },
        "/livez": {
            "get": {**public, "responses": {"200": _json("the process answers", ref["health"])}}
        },
        "/healthz": {
            "get": {
                **public,
                "responses": {
                    "200": _json("can serve: Redis answers", ref["health"]),
                    "503": _json(
                        "Redis does not answer (load balancers: take it out)",
                        ref["health"],
                        **{"Retry-After": {**_RETRY_AFTER, "required": True}},
                    ),
                },
            }
        },
        "/readyz": {
            "get": {
                **public,
                "responses": {
                    "200": _json("ready: Redis, storage and a consumer per pool", ref["readiness"]),
                    "503": _json("not ready", ref["readiness"]),
                },
            }
        },
    }
