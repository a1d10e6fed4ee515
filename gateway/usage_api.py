"""`GET /v1/usage`: balance, open holds, and charges per operation over a time range."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.context import authenticate, context
from gateway.http import JSONResponse
from jobs.errors import ErrorCode, FleetError


def _time(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise FleetError(
            ErrorCode.VALIDATION_ERROR, f"`{name}` is unix seconds or ISO 8601 - at `?{name}`"
        ) from None


def summarise(entries: list[dict[str, str]]) -> dict[str, Any]:
    charges: dict[str, dict[str, float]] = {}
    credits = 0
    for entry in entries:
        if entry["kind"] == "capture":
            row = charges.setdefault(
                entry["op"], {"jobs": 0, "megapixels": 0.0, "amount_micros": 0}
            )
            row["jobs"] += 1
            row["megapixels"] = round(row["megapixels"] + float(entry["mp"]), 6)
            row["amount_micros"] += int(entry["amount"])
        elif entry["kind"] == "credit":
            credits += int(entry["amount"])
    total = sum(int(row["amount_micros"]) for row in charges.values())
    return {"charges": charges, "charged_micros": total, "credited_micros": credits}


async def usage(request: Request) -> JSONResponse:
    tenant = await authenticate(request)
    ctx = context(request)
    until = _time(request, "to", time.time())
    since = _time(request, "from", until - 30 * 24 * 3600)
    account = await run_in_threadpool(ctx.accounts.require, tenant)
    holds = await run_in_threadpool(ctx.ledger.open_holds, tenant)
    entries = await run_in_threadpool(ctx.ledger.entries, tenant, since, until)
    return JSONResponse(
        {
            "account": tenant,
            "from": since,
            "to": until,
            "balance_micros": account.balance_micros,
            "held_micros": account.held_micros,
            "available_micros": account.available_micros,
            "open_holds": [{"job": job, "amount_micros": amount} for job, amount in holds.items()],
            **summarise(entries),
        }
    )
