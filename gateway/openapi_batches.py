"""The batch routes' part of the OpenAPI document (gateway/openapi.py builds the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagefleet.settings import Settings


def batch_paths(
    cfg: Settings,
    ref: dict[str, Any],
    spec_ref: dict[str, Any],
    errors: Callable[..., dict[str, Any]],
    authed: tuple[int, ...],
) -> dict[str, Any]:
    batch_id = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = {
        "type": "object",
        "properties": {
            "jobs": {
                "type": "array",
                "items": spec_ref,
                "minItems": 1,
                "maxItems": cfg.max_batch_jobs,
            },
            "webhook_url": {
                "type": ["string", "null"],
                "description": "called once when every job ended (default: the account's)",
            },
        },
        "required": ["jobs"],
        "additionalProperties": False,
    }
    data = {"type": "string", "contentMediaType": "application/json", "contentSchema": ref["batch"]}
    event = {
        "type": "object",
        "properties": {"event": {"enum": ["progress", "done"]}, "data": data},
        "required": ["event", "data"],
    }
    return {
        "/v1/batches": {
            "post": {
                "summary": "Submit many jobs at once",
                "description": "Each item is admitted as `POST /v1/jobs` would, or answers"
                " its own error; one Idempotency-Key covers the batch.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "the same key and body give back the same batch for 24 h",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "202": {
                        "description": "accepted: per item, its job or its error",
                        "content": {"application/json": {"schema": ref["batch_accepted"]}},
                        "headers": {
                            "Location": {"schema": {"type": "string"}, "required": True},
                            "Idempotent-Replayed": {
                                "schema": {"type": "string", "enum": ["true"]},
                            },
                        },
                    },
                    **errors(400, *authed, 409, 413),
                },
            }
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "summary": "A batch: its jobs counted by state, and whether all ended",
                "parameters": [batch_id],
                "responses": {
                    "200": {
                        "description": "the batch",
                        "content": {"application/json": {"schema": ref["batch"]}},
                    },
                    **errors(*authed, 404),
                },
            }
        },
        "/v1/batches/{batch_id}/events": {
            "get": {
                "summary": "Server-sent events of a batch's progress until it is done",
                "parameters": [batch_id],
                "responses": {
                    "200": {
                        "description": "`progress` when counts change, `done` at the end",
                        "content": {"text/event-stream": {"schema": event}},
                    },
                    **errors(*authed, 404),
                },
            }
        },
    }
