"""Server-sent events of a job's state changes."""

from __future__ import annotations

import json
import secrets

import httpx
import redis

from billing.accounts import Accounts
from tests import images
from tests.fleet_harness import Fleet


def test_events_stream_each_state_until_the_job_ends(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        client.put(
            "/v1/objects/e.jpg",
            content=images.encode(images.photo_like(1600, 1200, seed=8), "JPEG"),
        ).raise_for_status()
        job = client.post(
            "/v1/jobs", json={"operation": "blur", "input": "e.jpg", "sigma": 20}
        ).json()
        events: list[tuple[str, dict]] = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=60) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name or "", json.loads(line[6:])))
        assert client.get("/v1/jobs/nope/events").status_code == 404
    names = [n for n, _ in events]
    assert names[-1] == "succeeded" and events[-1][1]["status"] == "succeeded"
    order = ["queued", "running", "succeeded"]
    assert [order.index(n) for n in names] == sorted(order.index(n) for n in names)
    assert len(names) == len(set(names))  # each state once


def test_other_accounts_cannot_stream_a_job(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        client.put(
            "/v1/objects/f.png", content=images.encode(images.photo_like(20, 20))
        ).raise_for_status()
        job = client.post("/v1/jobs", json={"operation": "grayscale", "input": "f.png"}).json()
    _, other_key = Accounts(redis.Redis.from_url(dir_fleet.redis_url)).create(
        f"ev{secrets.token_hex(5)}", 1000
    )
    response = httpx.get(
        f"{dir_fleet.base_url}/v1/jobs/{job['id']}/events",
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert response.status_code == 404  # not 403: the id's existence does not leak
