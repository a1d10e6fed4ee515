"""Webhook deliveries: Standard Webhooks signatures and one POST to a checked address
(imagefleet/addresses.py). The connection goes to the address that was checked (no second
lookup an attacker could answer differently), and redirects are not followed. One attempt
has one deadline for all of it (connect, send, the whole response): a receiver that answers
a byte at a time keeps each read inside a socket timeout, so a watchdog shuts the socket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
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


class Watchdog:
    """Shuts an attempt's socket when its deadline passes, which wakes whatever read or
    write blocks on it; `fired` says the attempt ended by the deadline."""

    def __init__(self, seconds: float) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.fired = False
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.fired:
                _shut(sock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            if self.sock is not None:
                _shut(self.sock)


def _shut(sock: socket.socket) -> None:
    try:  # the socket's own shutdown, under TLS too (not the TLS close, which would block)
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already


class _Pinned(http.client.HTTPConnection):
    """HTTP to a checked IP, its socket under the attempt's watchdog."""

    def __init__(self, ip: str, port: int, watchdog: Watchdog, timeout: float) -> None:
        super().__init__(ip, port, timeout=timeout)
        self.watchdog = watchdog

    def raw_socket(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.watchdog.watch(sock)
        return sock

    def connect(self) -> None:
        self.sock = self.raw_socket()


class _PinnedHTTPS(_Pinned):
    """HTTPS to a checked IP, with the certificate verified for the URL's host name."""

    default_port = http.client.HTTPS_PORT

    def __init__(
        self, ip: str, port: int, hostname: str, watchdog: Watchdog, timeout: float
    ) -> None:
        super().__init__(ip, port, watchdog, timeout)
        self.tls = ssl.create_default_context()
        self.hostname = hostname

    def connect(self) -> None:
        sock = self.tls.wrap_socket(
            self.raw_socket(), server_hostname=self.hostname, do_handshake_on_connect=False
        )
        self.watchdog.watch(sock)  # the TLS socket owns the connection now: watch it instead
        sock.do_handshake()
        self.sock = sock


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
    deadline: float = 10.0,
) -> Outcome:
    """One POST that ends within `deadline` seconds, answered or not."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    watchdog = Watchdog(deadline)
    conn: _Pinned
    if parts.scheme == "https":
        conn = _PinnedHTTPS(ip, port, host, watchdog, deadline)
    else:
        conn = _Pinned(ip, port, watchdog, deadline)
    watchdog.timer.start()
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
        status = response.status
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except (OSError, http.client.HTTPException) as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    finally:
        watchdog.timer.cancel()
        conn.close()
    elapsed = time.monotonic() - started
    if watchdog.fired or elapsed >= deadline:  # what was read by then does not count
        return Outcome(None, elapsed * 1000, f"timed out: no whole answer within {deadline:g} s")
    return Outcome(status, elapsed * 1000, error)
