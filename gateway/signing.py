"""Signed URLs: gateway URLs carrying an HMAC of (method, storage key, expiry), or the S3
store's presigned URLs for downloads. Uploads always go through the gateway, which holds
them to the object limit, refuses empty bodies and takes one PUT per URL (a presigned S3 PUT
can do none of that)."""

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
_CLAIM_PREFIX = "imagefleet:upload-claim:"


def _secret(ctx: Context) -> bytes:
    """One secret for every gateway replica, made once and kept in Redis."""
    ctx.redis.set(_SECRET_KEY, secrets.token_hex(32), nx=True)
    secret = ctx.redis.get(_SECRET_KEY)
    return secret.encode() if isinstance(secret, str) else secret or b""


def _mac(ctx: Context, method: str, key: str, expires: int) -> str:
    digest = hmac.new(_secret(ctx), f"{method}\n{key}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def _gateway_url(ctx: Context, method: str, storage_key: str, expires: int) -> str:
    token = base64.urlsafe_b64encode(storage_key.encode()).decode().rstrip("=")
    return (
        f"{ctx.settings.public_url}/v1/signed/{token}?expires={expires}"
        f"&sig={quote(_mac(ctx, method, storage_key, expires))}"
    )


def signed_url(ctx: Context, method: str, storage_key: str, seconds: int) -> tuple[str, int]:
    """(url, expiry as unix seconds) to GET one storage key: the store's own, if it has one."""
    expires = int(time.time()) + seconds
    url = ctx.objects.presign(method, storage_key, seconds)
    return url or _gateway_url(ctx, method, storage_key, expires), expires


def upload_url(ctx: Context, storage_key: str, seconds: int) -> tuple[str, int]:
    """(url, expiry) of a single-use gateway URL to PUT one storage key."""
    expires = int(time.time()) + seconds
    return _gateway_url(ctx, "PUT", storage_key, expires), expires


def verify(ctx: Context, method: str, token: str, expires: str, sig: str) -> str:
    """The storage key a gateway-signed URL grants, or 404 (never say which check failed)."""
    try:
        storage_key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        # As bytes: compare_digest refuses (TypeError) str that is not ASCII.
        ok = int(expires) >= time.time() and hmac.compare_digest(
            sig.encode(), _mac(ctx, method, storage_key, int(expires)).encode()
        )
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise FleetError(ErrorCode.NOT_FOUND, "this link is invalid or has expired")
    return storage_key


def claim_upload(ctx: Context, token: str, expires: str, sig: str) -> str:
    """Verify an upload URL and take its one PUT, atomically across gateway replicas (409
    UPLOAD_URL_USED if another PUT has taken it); the storage key. The claim lasts until the
    URL expires unless `release_upload` gives it back."""
    storage_key = verify(ctx, "PUT", token, expires, sig)
    ttl = max(1, int(expires) - int(time.time()) + 1)
    if not ctx.redis.set(_CLAIM_PREFIX + sig, 1, nx=True, ex=ttl):
        raise FleetError(
            ErrorCode.UPLOAD_URL_USED,
            "this upload URL has been used (it takes one PUT); ask POST /v1/uploads for another",
        )
    return storage_key


def release_upload(ctx: Context, sig: str) -> None:
    """Give a failed PUT's claim back, so the caller can retry with the same URL."""
    ctx.redis.delete(_CLAIM_PREFIX + sig)
