"""Object keys: normalised, confined to the caller's namespace, never escaping it."""

from __future__ import annotations

import re

MAX_KEY_LENGTH = 1024
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidKey(ValueError):
    pass


def normalize_key(key: str) -> str:
    """Collapse `//` and `./`; refuse absolute paths, `..`, backslashes and control chars."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a key is 1 to {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidKey("absolute keys are not allowed")
    if "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey("keys may not contain backslashes or control characters")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidKey("`..` is not allowed in keys")
    if not parts:
        raise InvalidKey("the key names no object")
    return "/".join(parts)


def tenant_key(tenant: str, key: str) -> str:
    """The storage key of `key` inside `tenant`'s namespace."""
    if not _TENANT.match(tenant):
        raise InvalidKey("invalid tenant id")
    return f"tenants/{tenant}/{normalize_key(key)}"
