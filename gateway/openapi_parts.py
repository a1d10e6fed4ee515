"""The building blocks of the OpenAPI document (gateway/openapi.py and its route groups):
error replies by status, JSON replies, parameters, a server-sent event."""

from __future__ import annotations

from typing import Any

from jobs.errors import HTTP_STATUS
from jobs.records import JobStatus

REF = "#/components/schemas/{name}"
RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer"}}


def errors(*statuses: int) -> dict[str, Any]:
    """Error replies: each status with the codes (jobs/errors.py) that answer with it."""
    replies = {}
    for status in statuses:
        codes = ", ".join(f"`{c.value}`" for c, s in HTTP_STATUS.items() if s == status)
        reply: dict[str, Any] = {
            "description": codes or "an error",
            "content": {"application/json": {"schema": {"$ref": REF.format(name="ErrorEnvelope")}}},
        }
        if status == 429:
            reply["headers"] = {"Retry-After": {**RETRY_AFTER, "required": True}}
        if status == 503:
            reply["headers"] = {"Retry-After": RETRY_AFTER}
        replies[str(status)] = reply
    return replies


# Every authenticated route: no or a bad key, over the key's rate, headers over the limit, Redis
# or storage away (or the gateway holding as many bodies as it may).
AUTHED = (401, 429, 431, 503)


def json_reply(description: str, ref: dict[str, Any], **headers: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"description": description}
    reply["content"] = {"application/json": {"schema": ref}}
    if headers:
        reply["headers"] = headers
    return reply


def event(job: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event of gateway/events_api.py (keep-alive comments are not events)."""
    return {
        "type": "object",
        "properties": {
            "event": {"enum": [s.value for s in JobStatus]},
            "id": {"type": "string", "description": "the job's `updated_at`"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": job,
            },
        },
        "required": ["event", "id", "data"],
    }


def param(where: str, name: str, schema: dict[str, Any], description: str = "") -> dict:
    param = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    return {**param, "description": description} if description else param
