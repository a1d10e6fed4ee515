"""The services admission and the routes share: settings, stores, accounts, the ledger, the
dispatcher. No HTTP here (gateway/context.py finds them from a request)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from billing.accounts import Accounts, Authenticator
from billing.ledger import Ledger
from gateway.watch import JobEvents
from imagefleet.dispatch import Dispatch, dispatcher
from imagefleet.redis_conn import NotReplicated, connect, connect_async, wait_for_replicas
from imagefleet.settings import Settings
from jobs.errors import ErrorCode, FleetError
from jobs.lifecycle import withdraw
from jobs.records import JobError, JobRecord
from jobs.store import JobStore
from storage import ObjectStore, open_store

log = logging.getLogger("imagefleet.gateway")


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    objects: ObjectStore
    accounts: Accounts
    ledger: Ledger
    authenticator: Authenticator  # one Redis script per request, on the loop or a thread
    events: JobEvents  # one Redis subscription for every request waiting on a job
    aredis: aioredis.Redis  # the event loop's client: authentication, health checks
    dispatch: Dispatch  # how admitted jobs and webhooks reach the pools

    @classmethod
    def build(cls, cfg: Settings) -> Context:
        # Plain Redis or the master the sentinels name (imagefleet/redis_conn.py).
        client = connect(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5)
        accounts = Accounts(client)
        aclient = connect_async(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return cls(
            cfg,
            client,
            JobStore(client, cfg.job_ttl_seconds),
            open_store(cfg.storage_url),
            accounts,
            accounts.ledger,
            Authenticator(aclient, cfg.rate_limit),
            # no socket timeout: the subscription is quiet while nothing changes
            JobEvents(connect_async(cfg.redis_url), reader=aclient),
            aclient,
            dispatcher(cfg),
        )

    def replicated(self, *records: JobRecord) -> None:
        """Before new jobs are acknowledged (one, or a batch's): records and holds are on
        FLEET_REDIS_MIN_REPLICAS replicas (1 on Sentinel), so a failover cannot lose a job
        that was answered 202. If not, the job ends UNAVAILABLE (no worker runs it) and the
        caller gets 503 with Retry-After; the admission's cleanup releases the hold and the
        Idempotency-Key, so a retry with the same key makes the job anew."""
        cfg = self.settings
        try:
            wait_for_replicas(self.redis, cfg.redis_min_replicas, cfg.redis_wait_ms)
        except NotReplicated as exc:
            log.warning("%d new job(s) not acknowledged: %s", len(records), exc)
            error = JobError(
                ErrorCode.UNAVAILABLE.value,
                "no Redis replica confirmed the job; it was not accepted",
            )
            for record in records:
                self.jobs.apply(record.id, withdraw(error))
            raise FleetError(
                ErrorCode.UNAVAILABLE,
                "the job store could not replicate the job in time; retry",
                headers={"Retry-After": "1"},
            ) from None
