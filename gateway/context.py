"""What the gateway's routes share: settings, stores, accounts, the ledger, rate limits."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from billing.accounts import Account, Accounts
from billing.ledger import Ledger
from billing.ratelimit import RateLimiter
from gateway.watch import JobEvents
from imagefleet.settings import Settings
from jobs.errors import ErrorCode, FleetError
from jobs.store import JobStore
from storage import ObjectStore, open_store


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    objects: ObjectStore
    accounts: Accounts
    ledger: Ledger
    limiter: RateLimiter
    events: JobEvents  # one Redis subscription for every request waiting on a job

    @classmethod
    def build(cls, cfg: Settings) -> Context:
        client = redis.Redis.from_url(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5)
        accounts = Accounts(client)
        return cls(cfg, client, JobStore(client, cfg.job_ttl_seconds),
                   open_store(cfg.storage_url), accounts, accounts.ledger, RateLimiter(client),
                   JobEvents(aioredis.Redis.from_url(cfg.redis_url)))


def context(request: Request) -> Context:
    return request.app.state.context


def _check(ctx: Context, key: str) -> Account:
    account = ctx.accounts.authenticate(key)
    if account is None:
        raise FleetError(ErrorCode.UNAUTHORIZED, "unknown or disabled API key")
    wait_ms = ctx.limiter.wait_ms(account.id, account.rate_limit or ctx.settings.rate_limit)
    if wait_ms:
        seconds = max(1, -(-wait_ms // 1000))
        raise FleetError(ErrorCode.RATE_LIMITED, f"too many requests; retry in {seconds} s",
                         headers={"Retry-After": str(seconds)})
    return account


async def authenticate(request: Request) -> str:
    """The caller's tenant (account id), from `Authorization: Bearer <api key>`; the
    account itself is kept on `request.state.account`. Rate-limited per key."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise FleetError(ErrorCode.UNAUTHORIZED, "send `Authorization: Bearer <api key>`")
    account = await run_in_threadpool(_check, context(request), key.strip())
    request.state.account = account
    return account.id
