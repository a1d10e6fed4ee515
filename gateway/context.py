"""A request's way to the gateway's services (gateway/services.py), its API key, its account."""

from __future__ import annotations

from starlette.requests import Request

from billing.accounts import Account
from gateway.services import Context
from jobs.errors import ErrorCode, FleetError


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
    account = admitted(await context(request).authenticator.check(api_key(request)))
    request.state.account = account
    return account.id
