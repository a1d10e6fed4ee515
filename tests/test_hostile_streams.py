"""A hostile tenant opening many event streams: capped per API key (429 past the cap), and
never at the cost of the Redis connections other tenants' requests need."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import redis

from tests.fleet_harness import Fleet
from tests.hostile_inputs import (
    black_png,
    grayscale,
    new_tenant,
    open_stream,
    open_streams,
    put,
    replies,
)

STREAMS = 1000  # the hostile tester's figure: ten times the gateway's Redis pool
CAP = 16  # FLEET_MAX_EVENT_STREAMS_PER_KEY's default (the session fleet keeps it)


def _tenant_with_open_job(fleet: Fleet) -> tuple[str, str]:
    """A fresh account and one of its jobs that reads `running` until the test ends (its
    record is rewritten in Redis, so its event streams stay open)."""
    key = new_tenant(fleet, "hs", 10_000_000)
    with fleet.client(key) as api:
        put(api, "h.png", black_png())
        job = api.post("/v1/jobs?wait=30", json=grayscale("h.png")).json()
    assert job["status"] == "succeeded", job
    client = redis.Redis.from_url(fleet.redis_url)
    stored = client.get(f"imagefleet:job:{job['id']}")
    assert stored is not None
    record = json.loads(stored)
    record["status"] = "running"
    client.set(f"imagefleet:job:{job['id']}", json.dumps(record), keepttl=True)
    return key, job["id"]


async def _other_tenant(
    fleet: Fleet, key: str, job_id: str, stop: asyncio.Event, codes: list[int]
) -> list[int]:
    """Another tenant's ordinary requests, back to back until the flood is over."""
    async with httpx.AsyncClient(
        base_url=fleet.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        while not stop.is_set():
            codes.append((await client.get(f"/v1/jobs/{job_id}")).status_code)
            codes.append((await client.post("/v1/jobs", json=grayscale("h.png"))).status_code)
    return codes


async def _flood(fleet: Fleet, hostile: tuple[str, str], other: tuple[str, str]) -> None:
    key, job_id = hostile
    path = f"/v1/jobs/{job_id}/events"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=fleet.base_url,
        timeout=60,
        limits=limits,
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        stop = asyncio.Event()
        codes: list[int] = []
        others = asyncio.create_task(_other_tenant(fleet, *other, stop, codes))
        started = time.monotonic()
        responses = replies(await open_streams(client, path, STREAMS))
        took = time.monotonic() - started
        deadline = time.monotonic() + 30  # the other tenant goes on while the streams are open
        while len(codes) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        other_codes = await others
        opened = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        print(
            f"{STREAMS} streams in {took:.1f} s: {len(opened)} open, {len(refused)} 429, "
            f"other tenant {len(other_codes)} requests {sorted(set(other_codes))}"
        )
        try:
            assert len(opened) == CAP and len(refused) == STREAMS - CAP, sorted(
                {r.status_code for r in responses}
            )
            assert set(other_codes) == {200, 202} and len(other_codes) >= 4
            await refused[0].aread()
            body = refused[0].json()["error"]
            assert body["code"] == "RATE_LIMITED" and "event streams" in body["message"]
            assert int(refused[0].headers["Retry-After"]) >= 1
            for response in refused:
                await response.aclose()
            async with httpx.AsyncClient(
                base_url=fleet.base_url, timeout=60, headers={"Authorization": f"Bearer {other[0]}"}
            ) as other_client:
                other_stream = await open_stream(other_client, f"/v1/jobs/{other[1]}/events")
                assert other_stream.status_code == 200  # another key's streams are its own
                await other_stream.aclose()
            # closing streams frees their slots
            for response in opened[:2]:
                await response.aclose()
            reopened = await _reopen(client, path, 2)
            opened[:2] = reopened
            extra = await open_stream(client, path)
            assert extra.status_code == 429
            await extra.aclose()
        finally:
            for response in opened:
                await response.aclose()


async def _reopen(client: httpx.AsyncClient, path: str, count: int) -> list[httpx.Response]:
    """`count` new streams, retried while the gateway notices the closed ones."""
    got: list[httpx.Response] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        response = await open_stream(client, path)
        if response.status_code == 200:
            got.append(response)
            continue
        await response.aclose()
        assert response.status_code == 429 and time.monotonic() < deadline
        await asyncio.sleep(0.1)
    return got


def test_event_streams_per_key_are_capped_and_spare_other_tenants(dir_fleet: Fleet) -> None:
    hostile, other = _tenant_with_open_job(dir_fleet), _tenant_with_open_job(dir_fleet)
    log_start = dir_fleet.log_file.stat().st_size
    asyncio.run(_flood(dir_fleet, hostile, other))
    with dir_fleet.log_file.open("rb") as log:
        log.seek(log_start)
        assert b"Too many connections" not in log.read()
