"""Webhook deliveries: Standard Webhooks signatures, checked addresses, retries with backoff.

The URL's host is resolved once and every address it resolves to must be globally
routable, judged by the IPv4 address inside the IPv6 forms that carry one (mapped,
compatible, NAT64, 6to4, Teredo). Private addresses pass only with `allow_private`, loopback
only with `allow_loopback`; link-local (cloud metadata), unspecified, multicast and reserved
addresses never do. The connection goes to the address that was checked (no second lookup
an attacker could answer differently). URLs with credentials are refused, and redirects are
not followed.
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


IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: IPv4 in the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local use: /48 or /96 layout
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_NOT_GLOBAL = (_LOCAL_NAT64, ipaddress.ip_network("fec0::/10"))  # Python 3.11 calls these global
_NEVER = tuple(
    map(
        ipaddress.ip_network,
        (
            "0.0.0.0/8",  # "this network": a connection to 0.0.0.0 reaches loopback
            "100.100.100.200/32",
            "fd00:ec2::254/128",
        ),
    )
)  # cloud metadata in private ranges


def _v4(packed: bytes) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(packed)


def targets(ip: IP) -> list[IP]:
    """The addresses a connection to `ip` reaches: the IPv4 inside the IPv6 forms that
    carry one (both readings of a local-use NAT64 address, both ends of a Teredo one)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    raw = ip.packed
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):  # (not :: and ::1)
        return [_v4(raw[12:])]
    if ip in _LOCAL_NAT64:  # the readings that name an address (else the prefix's own)
        return [v4 for v4 in (_v4(raw[12:]), _v4(raw[6:8] + raw[9:11])) if int(v4)] or [ip]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return [ip]


def refusal(ip: IP, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why a webhook may not call `ip` ("loopback", ...), or None when it may."""
    if any(ip in net for net in _NOT_GLOBAL) and not allow_private:
        return "non-public"
    for target in targets(ip):
        if target.is_unspecified or any(target in net for net in _NEVER):
            return "forbidden"
        if target.is_loopback:
            if not allow_loopback:
                return "loopback"
        elif target.is_multicast or target.is_reserved:
            return "multicast or reserved"
        elif target.is_link_local:
            return "link-local"
        elif not target.is_global and not allow_private:
            return "non-public"
    return None


def check_address(url: str, allow_loopback: bool, allow_private: bool) -> tuple[str, str, int]:
    """(host, checked ip, port) of a deliverable URL, or Refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("webhook URLs are http:// or https:// with a host")
    if "@" in parts.netloc:
        raise Refused("webhook URLs may not carry credentials (user:password@)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the webhook URL's port is not a number from 0 to 65535") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:  # every address the name has: any of them may be the one dialled
        ip = ipaddress.ip_address(info[4][0])
        why = refusal(ip, allow_loopback, allow_private)
        if why:
            raise Refused(f"{parts.hostname} resolves to {why} address {ip}")
    return parts.hostname, infos[0][4][0], port


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked IP, with the certificate verified for the URL's host name."""

    def __init__(self, ip: str, port: int, hostname: str, timeout: float) -> None:
        super().__init__(ip, port, timeout=timeout, context=ssl.create_default_context())
        self.hostname = hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.hostname)


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
