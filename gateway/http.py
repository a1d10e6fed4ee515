"""JSON responses, error bodies and bounded body reads shared by every route."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from jobs.errors import ErrorCode, FleetError
from storage import InvalidKey, normalize_key

_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error_response(exc: FleetError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status,
                        headers=exc.headers or None)


def checked_key(key: str, path: str) -> str:
    """A caller's object key, normalised, or VALIDATION_ERROR naming where it came from."""
    try:
        return normalize_key(key)
    except InvalidKey as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, f"{exc} - at `{path}`") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over `limit` bytes before buffering it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FleetError(ErrorCode.PAYLOAD_TOO_LARGE, f"body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FleetError(ErrorCode.PAYLOAD_TOO_LARGE, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
