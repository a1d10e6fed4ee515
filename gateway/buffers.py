"""Request-body bytes the gateway process holds in memory at once, every request together
(FLEET_MAX_BUFFERED_BYTES). A body read takes its share before its first byte is read (its
declared length, or its route's limit when it declares none) and gives it back when its
request is answered, or once its route dropped the body to wait on a job; past the budget
the request is refused `503` with Retry-After, unread. Requests that did not authenticate
with an API key (x402 payers, who need their body read to be quoted, and signed URLs) share
half of it, so they can never crowd out the keyed tenants."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jobs.errors import ErrorCode, FleetError

HELD = "imagefleet.buffered"  # scope key: the bytes this request took
BUDGET = "imagefleet.budget"  # scope key: the process's BodyBudget
KEYLESS_SHARE = 2  # keyless requests hold at most 1/2 of the budget


class BodyBudget:
    """ASGI middleware that keeps the count: each request's share is given back when it ends."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.held = 0  # by every request
        self.keyless = 0  # by requests without an API key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[BUDGET] = self
        try:
            await self.app(scope, receive, send)
        finally:
            self.give_back(scope)

    def take(self, scope: Scope, size: int, keyless: bool) -> bool:
        if self.held + size > self.limit:
            return False
        if keyless and self.keyless + size > self.limit // KEYLESS_SHARE:
            return False
        held, was_keyless = scope.get(HELD, (0, keyless))
        scope[HELD] = (held + size, was_keyless)
        self.held += size
        self.keyless += size if was_keyless else 0
        return True

    def give_back(self, scope: Scope) -> None:
        size, keyless = scope.pop(HELD, (0, False))
        self.held -= size
        self.keyless -= size if keyless else 0


def hold(request: Request, size: int) -> None:
    """Take `size` bytes of the budget for this request's body, or refuse it (503) unread."""
    budget: BodyBudget | None = request.scope.get(BUDGET)
    if budget is None:  # an app without the middleware (a test's)
        return
    keyless = getattr(request.state, "account", None) is None
    if not budget.take(request.scope, size, keyless):
        raise FleetError(
            ErrorCode.UNAVAILABLE,
            f"the gateway is reading as many request bodies as it may hold"
            f" ({budget.limit} bytes); retry shortly",
            headers={"Retry-After": "1"},
        )


def done_with_body(request: Request) -> None:
    """The route dropped the body before it answers (a `?wait` holds the request, not the
    body): its share is free for others now."""
    budget: BodyBudget | None = request.scope.get(BUDGET)
    if budget is not None:
        budget.give_back(request.scope)
