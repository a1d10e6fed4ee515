"""The console's part of the OpenAPI document (gateway/openapi.py builds the rest): its page
and files (gateway/console_api.py), and `GET /v1/pools` (gateway/pools_api.py), which its
usage page reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.console_api import CONTENT_TYPES, CSP


def console_paths(
    ref: dict[str, Any],
    errors: Callable[..., dict[str, Any]],
    authed: tuple[int, ...],
) -> dict[str, Any]:
    """`ref["pools"]` is the Pools body's schema reference."""
    public: dict[str, Any] = {"security": []}  # loading the console needs no key
    csp = {"description": CSP, "schema": {"type": "string"}, "required": True}
    text = {"schema": {"type": "string"}}
    kinds = sorted({kind.split(";")[0] for kind in CONTENT_TYPES.values()})
    return {
        "/v1/pools": {
            "get": {
                "summary": "The worker pools: tasks waiting in each queue, operations each runs",
                "responses": {
                    "200": {
                        "description": "the pools",
                        "content": {"application/json": {"schema": ref["pools"]}},
                    },
                    **errors(*authed),
                },
            }
        },
        "/console": {
            "get": {
                **public,
                "summary": "The web console (docs/console.md)",
                "responses": {
                    "200": {
                        "description": "its page",
                        "headers": {"Content-Security-Policy": csp},
                        "content": {"text/html": text},
                    }
                },
            }
        },
        "/console/{file}": {
            "get": {
                **public,
                "summary": "One of the web console's files (scripts, styles)",
                "parameters": [
                    {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "headers": {"Content-Security-Policy": csp},
                        "content": {kind: text for kind in kinds},
                    },
                    "304": {"description": "unchanged since the `ETag` sent in If-None-Match"},
                    **errors(404),
                },
            }
        },
    }
