"""Batches on a real fleet: one request admits many jobs (each item its job or its own
error), one Idempotency-Key covers it, its counts and event stream follow it to the end,
and one signed webhook says it ended."""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from billing.accounts import Accounts
from imagefleet import client_cli
from tests import images
from tests.fleet_harness import Fleet
from tests.receiver import Receiver

PRICE_METADATA = 500  # flat micros
GRAYSCALE_2MP = 600


def _account(fleet: Fleet, credit: int) -> tuple[Accounts, str, str]:
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    name = f"b{secrets.token_hex(5)}"
    _, key = accounts.create(name, credit)
    return accounts, name, key


def _upload(client: httpx.Client, key: str, pixels: np.ndarray) -> None:
    client.put(f"/v1/objects/{key}", content=images.encode(pixels, "PNG")).raise_for_status()


def _done(client: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/v1/batches/{batch_id}").raise_for_status().json()
        if batch["done"]:
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)


def _metadata(n: int, key: str = "small.png") -> list[dict[str, Any]]:
    return [{"operation": "metadata", "input": key} for _ in range(n)]


@pytest.fixture
def tenant(dir_fleet: Fleet) -> Iterator[tuple[Accounts, str, httpx.Client]]:
    accounts, name, key = _account(dir_fleet, credit=3 * PRICE_METADATA + 100)
    with dir_fleet.client(key) as client:
        _upload(client, "small.png", np.zeros((8, 8, 3), np.uint8))
        _upload(client, "big.png", np.zeros((1000, 2000, 3), np.uint8))  # 2 MP: 600 micros
        yield accounts, name, client


def test_bad_and_unpayable_items_fail_alone(tenant: tuple[Accounts, str, httpx.Client]) -> None:
    accounts, name, client = tenant
    jobs = [
        *_metadata(1),
        {"operation": "metadata", "input": "small.png", "colour": 1},  # no such field
        *_metadata(2),
        {"operation": "grayscale", "input": "big.png"},  # 600 micros; 100 are left
        {"operation": "metadata", "input": "missing.png"},
    ]
    response = client.post("/v1/batches", json={"jobs": jobs})
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/batches/{body['id']}"
    items = body["items"]
    assert (body["admitted"], body["rejected"], len(items)) == (3, 3, 6)
    good = [items[i]["job"] for i in (0, 2, 3)]
    assert items[1]["error"]["code"] == "VALIDATION_ERROR"
    assert items[1]["error"]["message"].endswith("field `colour` - at `$.jobs[1]`")
    assert items[4]["error"]["code"] == "PAYMENT_REQUIRED"
    assert "$.jobs[4]" in items[4]["error"]["message"]
    assert items[4]["error"]["available_micros"] == 100
    assert items[5]["error"]["code"] == "NOT_FOUND"
    assert "`$.jobs[5].input`" in items[5]["error"]["message"]
    held = set(accounts.redis.hkeys(f"imagefleet:holds:{name}"))
    assert held <= {
        g.encode() for g in good
    }  # holds only for admitted jobs (some may have ended already)
    batch = _done(client, body["id"])
    assert batch["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "canceled": 0,
    }
    assert (batch["total"], batch["admitted"], batch["rejected"]) == (6, 3, 3)
    for job_id in good:
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    account = accounts.require(name)
    assert (account.balance_micros, account.held_micros) == (100, 0)


def test_one_idempotency_key_covers_the_batch(tenant: tuple[Accounts, str, httpx.Client]) -> None:
    _, _, client = tenant
    headers = {"Idempotency-Key": "batch-1"}
    body = {"jobs": _metadata(2)}
    first = client.post("/v1/batches", json=body, headers=headers)
    again = client.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    listed = client.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert len(listed) == 2  # no second set of jobs
    other = client.post("/v1/batches", json={"jobs": _metadata(1)}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"


def test_counts_and_events_follow_the_batch_to_its_end(
    tenant: tuple[Accounts, str, httpx.Client],
) -> None:
    _, _, client = tenant
    batch_id = client.post("/v1/batches", json={"jobs": _metadata(3)}).json()["id"]
    events = []
    with client.stream("GET", f"/v1/batches/{batch_id}/events", timeout=60) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    # the stream ends by itself after `done`
    assert events[-1][0] == "done" and events[-1][1]["done"] is True
    assert events[-1][1]["counts"]["succeeded"] == 3
    assert all(kind == "progress" for kind, _ in events[:-1])
    assert client.get(f"/v1/batches/{batch_id}").json()["done"] is True


def test_one_signed_webhook_when_the_batch_ends(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=100_000)
    receiver = Receiver(accounts.require(name).webhook_secret)
    try:
        with dir_fleet.client(key) as client:
            _upload(client, "small.png", np.zeros((8, 8, 3), np.uint8))
            jobs = [*_metadata(3), {"operation": "metadata", "input": "gone.png"}]
            batch_id = client.post(
                "/v1/batches", json={"jobs": jobs, "webhook_url": receiver.url}
            ).json()["id"]
            calls = receiver.wait_for(1)
            time.sleep(1.0)  # a second delivery would have arrived by now
            assert len(receiver.calls) == 1 and calls[0]["valid"]
            sent = json.loads(calls[0]["body"])
            assert sent["type"] == "batch.done"
            assert sent["batch"]["id"] == batch_id and sent["batch"]["done"] is True
            assert sent["batch"]["counts"]["succeeded"] == 3
            assert calls[0]["headers"]["webhook-id"] == f"msg_{batch_id}_done"
            deadline = time.monotonic() + 10
            while client.get(f"/v1/batches/{batch_id}").json()["webhook"]["state"] != "delivered":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        receiver.server.shutdown()


def test_a_batch_over_the_limit_is_refused_whole(dir_fleet: Fleet) -> None:
    _, _, key = _account(dir_fleet, credit=10_000_000)
    with dir_fleet.client(key) as client:
        response = client.post("/v1/batches", json={"jobs": _metadata(1001)})
        assert response.status_code == 400
        assert "1000" in response.json()["error"]["message"]
        assert "FLEET_MAX_BATCH_JOBS" in response.json()["error"]["message"]
        assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_batch_is_its_tenants_alone(
    tenant: tuple[Accounts, str, httpx.Client], dir_fleet: Fleet
) -> None:
    _, _, client = tenant
    batch_id = client.post("/v1/batches", json={"jobs": _metadata(1)}).json()["id"]
    _, _, other_key = _account(dir_fleet, credit=1000)
    with dir_fleet.client(other_key) as other:
        assert other.get(f"/v1/batches/{batch_id}").status_code == 404
        assert other.get(f"/v1/batches/{batch_id}/events").status_code == 404
        assert other.get("/v1/batches/bat_nope").json()["error"]["code"] == "NOT_FOUND"
    assert client.get(f"/v1/batches/{batch_id}").status_code == 200


def test_the_cli_batch_submits_batches(
    dir_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts, name, key = _account(dir_fleet, credit=1_000_000)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"img{i}.png").write_bytes(images.encode(np.full((20, 30, 3), i, np.uint8), "PNG"))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    parser = argparse.ArgumentParser(prog="imagefleet")
    client_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["batch", str(src), "--url", dir_fleet.base_url, "--key", key]
        + ["--op", "grayscale", "--batch-size", "3", "--out", str(tmp_path / "out")]
    )
    assert args.func(args) == 1  # one file failed
    summary = " ".join(capsys.readouterr().out.split())
    assert "succeeded 3" in summary and "failed 1" in summary
    assert "broken.png: IMAGE_PARSE_FAILED: " in summary
    assert len(list((tmp_path / "out").iterdir())) == 3
    # 4 files, 3 a batch: the CLI sent two batches, holding every job of this account
    owned = [
        batch
        for batch_key in accounts.redis.scan_iter("imagefleet:batch:*")
        if (batch := accounts.redis.hgetall(batch_key))[b"tenant"] == name.encode()
    ]
    assert sorted(int(b[b"total"]) for b in owned) == [1, 3]


def test_a_batch_of_only_bad_items_is_done_at_once(
    tenant: tuple[Accounts, str, httpx.Client],
) -> None:
    _, _, client = tenant
    body = client.post("/v1/batches", json={"jobs": [{"operation": "nope"}]}).json()
    assert (body["admitted"], body["rejected"]) == (0, 1)
    assert body["items"][0]["error"]["code"] == "VALIDATION_ERROR"
    batch = client.get(f"/v1/batches/{body['id']}").json()
    assert batch["done"] is True and sum(batch["counts"].values()) == 0
    with client.stream("GET", f"/v1/batches/{body['id']}/events") as stream:
        assert "event: done" in stream.read().decode()
