"""The web console: static files served at `/console` and `/console/{file}` (docs/console.md).

Only the files of gateway/console/ read when this module loads are served, looked up by
name in a dict: nothing the request says reaches the filesystem, so no path can climb out.
Every answer carries a Content-Security-Policy that allows this origin's scripts and styles
only (no inline script or style), `blob:`/`data:` images (objects are fetched with the API
key and shown through object URLs), and fetches to this origin only. The console itself
holds no privilege: it calls the public API with the key its user signs in with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from jobs.errors import ErrorCode, FleetError

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidate: a new release's files are seen at once
}


@dataclass(frozen=True)
class ConsoleFile:
    body: bytes
    content_type: str
    etag: str


def load(directory: Path) -> dict[str, ConsoleFile]:
    """name -> file, of the directory's servable files (no subdirectories)."""
    files = {}
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            kind = CONTENT_TYPES.get(path.suffix)
            if kind and path.is_file():
                body = path.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                files[path.name] = ConsoleFile(body, kind, etag)
    return files


FILES = load(CONSOLE_DIR)


def _serve(request: Request, name: str) -> Response:
    found = FILES.get(name)
    if found is None:
        raise FleetError(ErrorCode.NOT_FOUND, "no such console file")
    headers = {**HEADERS, "ETag": found.etag}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)


async def console_page(request: Request) -> Response:
    return _serve(request, "index.html")


async def console_file(request: Request) -> Response:
    return _serve(request, request.path_params["file"])
