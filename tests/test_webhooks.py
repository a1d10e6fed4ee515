"""Webhooks and cancellation on a real fleet, with a signature-checking receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from billing.accounts import Accounts
from tests import images
from tests.fleet_harness import Fleet, wait_for_job
from tests.receiver import Receiver


@pytest.fixture
def receiver(dir_fleet: Fleet) -> Iterator[Receiver]:
    account = Accounts(redis.Redis.from_url(dir_fleet.redis_url)).require("dev")
    server = Receiver(account.webhook_secret)
    yield server
    server.server.shutdown()


def _upload(client: httpx.Client, key: str, data: bytes) -> None:
    client.put(f"/v1/objects/{key}", content=data).raise_for_status()


def _ended_with_webhook(client: httpx.Client, job_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["webhook"] and job["webhook"]["state"] == state:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_signed_delivery_on_success_and_on_failure(dir_fleet: Fleet, receiver: Receiver) -> None:
    with dir_fleet.client() as client:
        _upload(client, "w.png", images.encode(np.zeros((8, 8, 3), np.uint8)))
        _upload(client, "bad.png", b"\x89PNG\r\n\x1a\nbroken")
        ok = client.post(
            "/v1/jobs",
            json={"operation": "grayscale", "input": "w.png", "webhook_url": receiver.url},
        ).json()
        assert ok["webhook"] == {"url": receiver.url, "state": "pending", "deliveries": []}
        bad = client.post(
            "/v1/jobs",
            json={"operation": "grayscale", "input": "bad.png", "webhook_url": receiver.url},
        ).json()
        done = _ended_with_webhook(client, ok["id"], "delivered")
        _ended_with_webhook(client, bad["id"], "delivered")
    calls = receiver.wait_for(2)
    assert len(calls) == 2 and all(call["valid"] for call in calls)
    bodies = {json.loads(c["body"])["id"]: json.loads(c["body"]) for c in calls}
    assert bodies[ok["id"]]["status"] == "succeeded"
    assert bodies[bad["id"]]["status"] == "failed"
    assert bodies[bad["id"]]["error"]["code"] == "IMAGE_PARSE_FAILED"
    delivery = done["webhook"]["deliveries"][0]
    assert delivery["status"] == 204 and delivery["attempt"] == 1 and delivery["error"] is None


def test_retries_after_500s_then_success_and_redelivery(
    dir_fleet: Fleet, receiver: Receiver
) -> None:
    receiver.failures = 2
    with dir_fleet.client() as client:
        _upload(client, "r.png", images.encode(np.zeros((8, 8, 3), np.uint8)))
        job = client.post(
            "/v1/jobs",
            json={"operation": "grayscale", "input": "r.png", "webhook_url": receiver.url},
        ).json()
        done = _ended_with_webhook(client, job["id"], "delivered")
        statuses = [d["status"] for d in done["webhook"]["deliveries"]]
        assert statuses == [500, 500, 204]
        assert len({c["headers"]["webhook-id"] for c in receiver.calls}) == 1  # one event
        redo = client.post(f"/v1/jobs/{job['id']}/webhook/redeliver")
        assert redo.status_code == 202
        assert len(receiver.wait_for(4)) == 4 and receiver.calls[-1]["valid"]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest",
        "ftp://127.0.0.1/x",
        "http://192.168.1.10:8080/h",
    ],
)
def test_refused_addresses_are_400_at_submission(dir_fleet: Fleet, url: str) -> None:
    with dir_fleet.client() as client:
        _upload(client, "x.png", images.encode(np.zeros((8, 8, 3), np.uint8)))
        response = client.post(
            "/v1/jobs", json={"operation": "grayscale", "input": "x.png", "webhook_url": url}
        )
    assert response.status_code == 400
    assert "`$.webhook_url`" in response.json()["error"]["message"]


def test_cancel_races_never_end_succeeded_and_charge_once(
    dir_fleet: Fleet, receiver: Receiver
) -> None:
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    before = accounts.require("dev")
    with dir_fleet.client() as client:
        _upload(client, "c.jpg", images.encode(images.photo_like(2000, 1500, seed=2), "JPEG"))
        body = {
            "operation": "pipeline",
            "input": "c.jpg",
            "webhook_url": receiver.url,
            "steps": [{"operation": "blur", "sigma": 30}] * 3,
        }
        ids = [client.post("/v1/jobs", json=body).json()["id"] for _ in range(4)]
        outcomes = {}
        for job_id in ids:
            response = client.delete(f"/v1/jobs/{job_id}")
            outcomes[job_id] = response.status_code
            assert response.status_code in (200, 409)
            if response.status_code == 200:
                assert response.json()["status"] == "canceled"
        time.sleep(1)
        finals = {job_id: wait_for_job(client, job_id, timeout=120) for job_id in ids}
        for job_id, code in outcomes.items():
            if code == 200:  # canceled stays canceled, however the worker's run ended
                assert finals[job_id]["status"] == "canceled"
                # released while queued; once running, captured (the share it ran, or the
                # whole price when its worker captured a moment before the cancel landed)
                state = finals[job_id]["billing"]["state"]
                assert state == ("released" if finals[job_id]["started_at"] is None else "captured")
        assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 409  # already ended
    assert any(code == 200 for code in outcomes.values())
    after = accounts.require("dev")
    assert after.held_micros == before.held_micros
    charged = sum(f["billing"]["charged_micros"] for f in finals.values())
    assert before.balance_micros - after.balance_micros == charged
    canceled = [j for j, c in outcomes.items() if c == 200]
    bodies = [json.loads(c["body"]) for c in receiver.wait_for(len(ids))]
    assert {b["id"] for b in bodies if b["status"] == "canceled"} >= set(canceled)


def test_an_account_default_webhook_applies_to_jobs_without_one(dir_fleet: Fleet) -> None:
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    name = f"hook{int(time.time() * 1000) % 10**8}"
    account, key = accounts.create(name, 1_000_000)
    server = Receiver(account.webhook_secret)
    accounts.set_webhook_url(name, server.url)
    try:
        with dir_fleet.client(key) as client:
            _upload(client, "d.png", images.encode(np.zeros((8, 8, 3), np.uint8)))
            job = client.post("/v1/jobs", json={"operation": "grayscale", "input": "d.png"}).json()
            assert job["spec"]["webhook_url"] == server.url
            _ended_with_webhook(client, job["id"], "delivered")
        calls = server.wait_for(1)
        assert calls[0]["valid"] and json.loads(calls[0]["body"])["id"] == job["id"]
    finally:
        server.server.shutdown()
