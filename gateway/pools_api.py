"""`GET /v1/pools`: each worker pool with the tasks waiting in its queue and the operations
it runs, for the console's usage page and for clients that want to pace themselves.

The depths are the fleet's, not the caller's (Celery keeps each Redis queue as a list named
after it; gateway/admission.py refuses work past `FLEET_MAX_QUEUE_DEPTH` from the same
LLEN). `queued` is null when the broker is not Redis (RabbitMQ keeps its own counts)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request

from gateway.context import authenticate, context
from gateway.http import JSONResponse
from jobs.pools import Pool
from jobs.registry import OPERATIONS


class PoolDepth(msgspec.Struct):
    name: Pool
    queued: int | None  # tasks waiting in the pool's queue; null off a Redis broker
    operations: list[str]  # what runs on it (webhooks and payments: none, they deliver)


class Pools(msgspec.Struct):
    pools: list[PoolDepth]


def _operations(pool: Pool) -> list[str]:
    return sorted(name for name, op in OPERATIONS.items() if op.queue == pool)


async def list_pools(request: Request) -> JSONResponse:
    await authenticate(request)
    ctx = context(request)
    depths: list[int | None] = [None] * len(Pool)
    if ctx.settings.broker_url.startswith("redis"):
        async with ctx.aredis.pipeline(transaction=False) as pipe:
            for pool in Pool:
                pipe.llen(pool.value)
            depths = [int(n) for n in await pipe.execute()]
    return JSONResponse(
        Pools(
            [
                PoolDepth(pool, depth, _operations(pool))
                for pool, depth in zip(Pool, depths, strict=True)
            ]
        )
    )
