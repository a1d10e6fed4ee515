"""`GET /v1/usage`: balance, open holds, and charges per operation over a time range."""

from __future__ import annotations

import math
import time
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.bodies import Charge, OpenHold, Usage
from gateway.context import authenticate, context
from gateway.http import JSONResponse
from jobs.errors import ErrorCode, FleetError

# Ledger entries are kept by unix milliseconds: times outside 1970 to 9999 name none.
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z


def _parse(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _time(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = _parse(raw)
    except (ValueError, OverflowError, OSError):  # OSError: local time of year 1
        value = math.nan
    if not 0 <= value <= LATEST:  # NaN too
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            f"`{name}` is unix seconds or ISO 8601, from 1970 to 9999 - at `?{name}`",
        )
    return value


def summarise(entries: list[dict[str, str]]) -> tuple[dict[str, Charge], int]:
    """Charges per operation, and the credits, of some ledger entries."""
    charges: dict[str, Charge] = {}
    credits = 0
    for entry in entries:
        if entry["kind"] == "capture":
            row = charges.setdefault(entry["op"], Charge(0, 0.0, 0))
            row.jobs += 1
            row.megapixels = round(row.megapixels + float(entry["mp"]), 6)
            row.amount_micros += int(entry["amount"])
        elif entry["kind"] == "credit":
            credits += int(entry["amount"])
    return charges, credits


async def usage(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    until = _time(request, "to", time.time())
    since = _time(request, "from", max(0.0, until - 30 * 24 * 3600))
    account = await run_in_threadpool(ctx.accounts.require, tenant)
    holds = await run_in_threadpool(ctx.ledger.open_holds, tenant)
    entries = await run_in_threadpool(ctx.ledger.entries, tenant, since, until)
    charges, credits = summarise(entries)
    return JSONResponse(
        Usage(
            account=tenant,
            since=since,
            until=until,
            balance_micros=account.balance_micros,
            held_micros=account.held_micros,
            available_micros=account.available_micros,
            open_holds=[OpenHold(job, amount) for job, amount in holds.items()],
            charges=charges,
            charged_micros=sum(row.amount_micros for row in charges.values()),
            credited_micros=credits,
        )
    )
