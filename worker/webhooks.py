"""Webhook deliveries: Standard Webhooks signatures, checked addresses, retries with backoff.

The URL's host is resolved once; private, loopback and link-local addresses are refused
unless config allows them, and the connection goes to the address that was checked (no
second lookup an attacker could answer differently). Redirects are not followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
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


class Refused(ValueError):
    """The URL may not be called (bad scheme, or an address config does not allow)."""


@dataclass(frozen=True)
class Outcome:
    status: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def check_address(url: str, allow_loopback: bool, allow_private: bool) -> tuple[str, str, int]:
    """(host, checked ip, port) of a deliverable URL, or Refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("webhook URLs are http:// or https:// with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_loopback and not allow_loopback:
            raise Refused(f"{parts.hostname} resolves to loopback {ip}")
        if not ip.is_loopback and (ip.is_private or ip.is_link_local or ip.is_reserved
                                   or ip.is_multicast or ip.is_unspecified) and not allow_private:
            raise Refused(f"{parts.hostname} resolves to non-public {ip}")
    return parts.hostname, infos[0][4][0], port


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked IP, with the certificate verified for the URL's host name."""

    def __init__(self, ip: str, port: int, hostname: str, timeout: float) -> None:
        super().__init__(ip, port, timeout=timeout, context=ssl.create_default_context())
        self.hostname = hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.hostname)


def post(url: str, body: bytes, headers: dict[str, str], ip: str, port: int, host: str,
         timeout: float = 10.0) -> Outcome:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedHTTPS(ip, port, host, timeout)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            **headers, "Host": parts.netloc, "Content-Type": "application/json",
            "User-Agent": "imagefleet-webhooks/1"})
        response = conn.getresponse()
        response.read(64 * 1024)
        return Outcome(response.status, (time.monotonic() - started) * 1000,
                       None if 200 <= response.status < 300 else f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, (time.monotonic() - started) * 1000, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
