"""Accounts and their API keys. Keys are stored only as SHA-256 hashes (shown once at
creation or rotation); each account also has a webhook signing secret. The account id is
its tenant: the namespace of its jobs and objects."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import cast

import msgspec
import redis
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from billing.ledger import PREFIX, Ledger, account_key
from billing.ratelimit import TAKE_TOKEN_LUA

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def new_api_key() -> str:
    return "if_" + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:  # the Standard Webhooks format
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


# KEYS[1] the key's index entry; ARGV: account key prefix, rate-bucket prefix, the fleet's
# default rate, now (ms), the presented key's digest. Returns false for an unknown key, else
# {account name, its fields, ms to wait}; a token is taken only for an enabled account whose
# stored hash matches (Python compares again, in constant time). The account key is derived
# in the script, so this needs a single Redis, not a cluster.
_AUTHENTICATE = (
    TAKE_TOKEN_LUA
    + """
local name = redis.call('GET', KEYS[1])
if not name then return false end
local fields = redis.call('HGETALL', ARGV[1] .. name)
local account = {}
for i = 1, #fields, 2 do account[fields[i]] = fields[i + 1] end
local wait = 0
if account['key_hash'] == ARGV[5] and account['disabled'] ~= '1' then
  local rate = tonumber(account['rate_limit'] or '0') or 0
  if rate <= 0 then rate = tonumber(ARGV[3]) end
  if rate > 0 then wait = take(ARGV[2] .. name, rate, tonumber(ARGV[4])) end
end
return {name, fields, wait}
"""
)


class Account(msgspec.Struct, kw_only=True):
    id: str
    balance_micros: int
    held_micros: int
    credited_micros: int
    captured_micros: int
    disabled: bool
    created_at: float
    rate_limit: float  # requests per second; 0 = the fleet default
    webhook_secret: str
    webhook_url: str | None = None  # for jobs that name none

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros

    def public(self) -> dict[str, object]:
        body = msgspec.to_builtins(self)
        del body["webhook_secret"]
        body["available_micros"] = self.available_micros
        return body


def _parse(name: str, raw: dict[str, str]) -> tuple[Account, str] | None:
    """An account and its key hash from its Redis hash fields (None if it has none)."""
    if "key_hash" not in raw:
        return None
    return Account(
        id=name,
        balance_micros=int(raw["balance"]),
        held_micros=int(raw["held"]),
        credited_micros=int(raw["credited"]),
        captured_micros=int(raw["captured"]),
        disabled=raw["disabled"] == "1",
        created_at=float(raw["created_at"]),
        rate_limit=float(raw["rate_limit"]),
        webhook_secret=raw["webhook_secret"],
        webhook_url=raw.get("webhook_url") or None,
    ), raw["key_hash"]


class AccountError(ValueError):
    pass


class Accounts:
    def __init__(self, client: redis.Redis) -> None:
        # The fleet's clients leave replies undecoded: the casts below say bytes where
        # redis-py types a reply as bytes | str.
        self.redis = client
        self.ledger = Ledger(client)

    def create(
        self,
        name: str,
        credit_micros: int = 0,
        rate_limit: float = 0,
        api_key: str | None = None,
        webhook_url: str | None = None,
    ) -> tuple[Account, str]:
        """A new account and its API key (the only time the plain key is known)."""
        if not _NAME.match(name):
            raise AccountError("names are 1-64 of a-z, 0-9, _ and -, starting alphanumeric")
        key = api_key or new_api_key()
        fields: dict[FieldT, EncodableT] = {
            "balance": 0,
            "held": 0,
            "credited": 0,
            "captured": 0,
            "disabled": 0,
            "created_at": time.time(),
            "rate_limit": rate_limit,
            "webhook_secret": new_webhook_secret(),
            "key_hash": _digest(key),
            "webhook_url": webhook_url or "",
        }
        if not self.redis.hsetnx(account_key(name), "created_at", fields["created_at"]):
            raise AccountError(f"account {name!r} exists")
        self.redis.hset(account_key(name), mapping=fields)
        self.redis.sadd(f"{PREFIX}accounts", name)
        self.redis.set(f"{PREFIX}apikey:{_digest(key)}", name)
        if credit_micros:
            self.ledger.credit(name, credit_micros)
        account = self.get(name)
        assert account is not None
        return account, key

    def get(self, name: str) -> Account | None:
        found = self._load(name)
        return found[0] if found else None

    def _load(self, name: str) -> tuple[Account, str] | None:
        """The account and its key hash, from one read."""
        raw = cast(dict[bytes, bytes], self.redis.hgetall(account_key(name)))
        return _parse(name, {k.decode(): v.decode() for k, v in raw.items()})

    def names(self) -> list[str]:
        return sorted(
            m.decode() for m in cast(set[bytes], self.redis.smembers(f"{PREFIX}accounts"))
        )

    def require(self, name: str) -> Account:
        account = self.get(name)
        if account is None:
            raise AccountError(f"no account {name!r}")
        return account

    def credit(self, name: str, micros: int) -> Account:
        self.require(name)
        self.ledger.credit(name, micros)
        return self.require(name)

    def rotate_key(self, name: str) -> str:
        self.require(name)
        key = new_api_key()
        old = cast(bytes | None, self.redis.hget(account_key(name), "key_hash"))
        with self.redis.pipeline() as pipe:
            pipe.set(f"{PREFIX}apikey:{_digest(key)}", name)
            pipe.hset(account_key(name), "key_hash", _digest(key))
            if old:
                pipe.delete(f"{PREFIX}apikey:{old.decode()}")
            pipe.execute()
        return key

    def set_webhook_url(self, name: str, url: str | None) -> None:
        self.require(name)
        self.redis.hset(account_key(name), "webhook_url", url or "")

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        self.require(name)
        self.redis.hset(account_key(name), "disabled", int(disabled))

    def ensure(self, name: str, api_key: str, credit_micros: int) -> Account:
        """The account with this key, made (and credited) if missing: the local dev account."""
        account = self.get(name)
        if account is None:
            account, _ = self.create(name, credit_micros, api_key=api_key)
        elif self.redis.get(f"{PREFIX}apikey:{_digest(api_key)}") is None:
            self.redis.set(f"{PREFIX}apikey:{_digest(api_key)}", name)
            self.redis.hset(account_key(name), "key_hash", _digest(api_key))
        return account


class Authenticator:
    """The gateway's per-request check: the key's enabled account and the milliseconds its
    rate limit asks to wait, in one Redis round trip on the event loop, before any body is
    read."""

    def __init__(self, aclient: aioredis.Redis, default_rate: float) -> None:
        self._ascript = aclient.register_script(_AUTHENTICATE)
        self.default_rate = default_rate

    def _keys_and_args(self, digest: str) -> tuple[list[str], list[EncodableT]]:
        return [f"{PREFIX}apikey:{digest}"], [
            account_key(""),
            f"{PREFIX}rate:",
            self.default_rate,
            int(time.time() * 1000),
            digest,
        ]

    async def check(self, api_key: str) -> tuple[Account | None, int]:
        digest = _digest(api_key)
        keys, args = self._keys_and_args(digest)
        return _checked(await self._ascript(keys=keys, args=args), digest)


def _checked(reply: list | None, digest: str) -> tuple[Account | None, int]:
    if not reply:
        return None, 0
    name, fields, wait_ms = reply
    raw = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
    found = _parse(name.decode(), raw)
    # Constant-time comparison of the stored hash with the presented key's hash.
    if found is None or not hmac.compare_digest(found[1], digest) or found[0].disabled:
        return None, 0
    return found[0], int(wait_ms)
