"""What the gateway's routes share: settings, the job store, the object store, the broker."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from billing.accounts import ApiKeys
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
    keys: ApiKeys

    @classmethod
    def build(cls, cfg: Settings) -> Context:
        client = redis.Redis.from_url(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return cls(cfg, client, JobStore(client, cfg.job_ttl_seconds),
                   open_store(cfg.storage_url), ApiKeys(client))


def context(request: Request) -> Context:
    return request.app.state.context


async def authenticate(request: Request) -> str:
    """The caller's tenant, from `Authorization: Bearer <api key>`."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise FleetError(ErrorCode.UNAUTHORIZED, "send `Authorization: Bearer <api key>`")
    tenant = await run_in_threadpool(context(request).keys.tenant_for, key.strip())
    if tenant is None:
        raise FleetError(ErrorCode.UNAUTHORIZED, "unknown or disabled API key")
    return tenant
