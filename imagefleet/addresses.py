"""Which addresses a webhook may be sent to (the gateway checks at submission, the
deliverer again at each attempt, and connects to the address it checked).

The URL's host is resolved once and every address it resolves to must be globally
routable, judged by the IPv4 address inside the IPv6 forms that carry one (mapped,
compatible, NAT64, 6to4, Teredo). Private addresses pass only with `allow_private`, loopback
only with `allow_loopback`; link-local (cloud metadata), unspecified, multicast and reserved
addresses never do. URLs with credentials are refused.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class Refused(ValueError):
    """The URL may not be called (bad scheme, or an address config does not allow)."""


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
    return parts.hostname, str(infos[0][4][0]), port
