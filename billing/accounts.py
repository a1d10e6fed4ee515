"""API keys -> tenants. Keys are stored only as SHA-256 hashes; the plain key is shown once.

Thin for now: one key per tenant, no balance. Full accounts (credit, rotation) grow here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis

_PREFIX = "imagefleet:apikey:"


def new_api_key() -> str:
    return "if_" + secrets.token_urlsafe(32)


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def register(self, api_key: str, tenant: str) -> None:
        self.redis.set(_PREFIX + _digest(api_key), f"{_digest(api_key)}:{tenant}")

    def tenant_for(self, api_key: str) -> str | None:
        digest = _digest(api_key)
        stored = self.redis.get(_PREFIX + digest)
        if stored is None:
            return None
        stored_digest, _, tenant = stored.decode().partition(":")
        # Constant-time comparison of the stored hash with the presented key's hash.
        return tenant if hmac.compare_digest(stored_digest, digest) else None
