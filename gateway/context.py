"""A request's way to the gateway's services (gateway/services.py), its API key, its account."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from billing.accounts import Account
from gateway.services import Context
from jobs.errors import ErrorCode, FleetError

# Checks before a body is read (keys, keyless callers' buckets) in flight at once, of the
# event loop's 100 Redis connections (watchers take 8): the rest wait their turn, where more
# at once would be refused "Too many connections" (503).
ADMISSION_CALLS = 64
_GATE: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None


def admission_calls() -> asyncio.Semaphore:
    """The gate those checks pass (`async with`): one per event loop."""
    global _GATE
    loop = asyncio.get_running_loop()
    if _GATE is None or _GATE[0] is not loop:
        _GATE = (loop, asyncio.Semaphore(ADMISSION_CALLS))
    return _GATE[1]


def context(request: Request) -> Context:
    return request.app.state.context


def api_key(request: Request) -> str:
    """The key of `Authorization: Bearer <api key>` (UNAUTHORIZED if there is none)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise FleetError(ErrorCode.UNAUTHORIZED, "send `Authorization: Bearer <api key>`")
    return key.strip()


def admitted(found: tuple[Account | None, int]) -> Account:
    """The account of an authentication check, unless it failed or must wait."""
    account, wait_ms = found
    if account is None:
        raise FleetError(ErrorCode.UNAUTHORIZED, "unknown or disabled API key")
    if wait_ms:
        raise rate_limited(wait_ms, "too many requests")
    return account


def rate_limited(wait_ms: int, what: str) -> FleetError:
    """429 for a bucket that has a token again in `wait_ms`: Retry-After in whole seconds."""
    seconds = max(1, -(-wait_ms // 1000))
    return FleetError(
        ErrorCode.RATE_LIMITED,
        f"{what}; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


async def authenticate(request: Request) -> str:
    """The caller's tenant (account id); the account itself is kept on
    `request.state.account`. Rate-limited per key."""
    key = api_key(request)
    async with admission_calls():
        found = await context(request).authenticator.check(key)
    account = admitted(found)
    request.state.account = account
    return account.id
