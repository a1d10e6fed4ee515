"""Signed URLs for uploads and outputs: the S3 store's presigned URLs, or, on the
directory store, gateway URLs carrying an HMAC of (method, storage key, expiry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from gateway.context import Context
from jobs.errors import ErrorCode, FleetError

_SECRET_KEY = "imagefleet:url-signing-secret"


def _secret(ctx: Context) -> bytes:
    """One secret for every gateway replica, made once and kept in Redis."""
    ctx.redis.set(_SECRET_KEY, secrets.token_hex(32), nx=True)
    return ctx.redis.get(_SECRET_KEY) or b""


def _mac(ctx: Context, method: str, key: str, expires: int) -> str:
    digest = hmac.new(_secret(ctx), f"{method}\n{key}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def signed_url(ctx: Context, method: str, storage_key: str, seconds: int) -> tuple[str, int]:
    """(url, expiry as unix seconds) for one method on one storage key."""
    expires = int(time.time()) + seconds
    url = ctx.objects.presign(method, storage_key, seconds)
    if url is None:
        token = base64.urlsafe_b64encode(storage_key.encode()).decode().rstrip("=")
        url = (f"{ctx.settings.public_url}/v1/signed/{token}?expires={expires}"
               f"&sig={quote(_mac(ctx, method, storage_key, expires))}")
    return url, expires


def verify(ctx: Context, method: str, token: str, expires: str, sig: str) -> str:
    """The storage key a gateway-signed URL grants, or 404 (never say which check failed)."""
    try:
        storage_key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        ok = int(expires) >= time.time() and hmac.compare_digest(
            sig, _mac(ctx, method, storage_key, int(expires)))
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise FleetError(ErrorCode.NOT_FOUND, "this link is invalid or has expired")
    return storage_key
