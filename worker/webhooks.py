"""Webhook deliveries: Standard Webhooks signatures and one POST to a checked address
(imagefleet/addresses.py). The connection goes to the address that was checked (no second
lookup an attacker could answer differently), and redirects are not followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the whsec_ secret's key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Outcome:
    status: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked IP, with the certificate verified for the URL's host name."""

    def __init__(self, ip: str, port: int, hostname: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(ip, port, timeout=timeout, context=self.tls)
        self.hostname = hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.hostname)


def host_header(url: str) -> str:
    """The URL's host[:port], never its user:password@ part."""
    return urlsplit(url).netloc.rpartition("@")[2]


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    ip: str,
    port: int,
    host: str,
    timeout: float = 10.0,
) -> Outcome:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedHTTPS(ip, port, host, timeout)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                **headers,
                "Host": host_header(url),
                "Content-Type": "application/json",
                "User-Agent": "imagefleet-webhooks/1",
            },
        )
        response = conn.getresponse()
        response.read(64 * 1024)
        return Outcome(
            response.status,
            (time.monotonic() - started) * 1000,
            None if 200 <= response.status < 300 else f"HTTP {response.status}",
        )
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, (time.monotonic() - started) * 1000, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
