"""Billing on a real fleet: holds, captures, reversals, idempotency, isolation, limits."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import redis

from billing.accounts import Accounts
from billing.reconcile import reconcile
from jobs.store import JobStore
from tests import images
from tests.conftest import TEST_MAX_MEGAPIXELS
from tests.fleet_harness import Fleet, process_table, wait_for_job

PRICE_METADATA = 500  # flat micros


def _account(fleet: Fleet, credit: int, rate: float = 0) -> tuple[Accounts, str, str]:
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    name = f"t{secrets.token_hex(5)}"
    _, key = accounts.create(name, credit, rate_limit=rate)
    return accounts, name, key


def _problems(fleet: Fleet, name: str) -> list[str]:
    client = redis.Redis.from_url(fleet.redis_url)
    return [
        p for p in reconcile(Accounts(client), JobStore(client, 3600)) if p.startswith(f"{name}:")
    ]


def _upload(client: httpx.Client, key: str, pixels: np.ndarray, fmt: str = "PNG") -> None:
    client.put(f"/v1/objects/{key}", content=images.encode(pixels, fmt)).raise_for_status()


def test_402_names_price_and_balance_and_charges_nothing(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=100)
    with dir_fleet.client(key) as client:
        _upload(client, "big.png", np.zeros((1000, 2000, 3), np.uint8))  # 2 MP = 600 micros
        response = client.post("/v1/jobs", json={"operation": "grayscale", "input": "big.png"})
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "PAYMENT_REQUIRED"
    assert (error["price_micros"], error["balance_micros"], error["megapixels"]) == (600, 100, 2.0)
    account = accounts.require(name)
    assert (account.balance_micros, account.held_micros) == (100, 0)


def test_success_captures_the_quote_and_usage_reports_it(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=10_000)
    with dir_fleet.client(key) as client:
        _upload(client, "p.png", np.zeros((1500, 2000, 3), np.uint8))  # 3 MP -> 900 micros
        job = client.post("/v1/jobs?wait=60", json={"operation": "blur", "input": "p.png"}).json()
        assert job["status"] == "succeeded", job
        usage = client.get("/v1/usage").json()
    assert job["billing"] == {
        "megapixels": 3.0,
        "quoted_micros": 900,
        "charged_micros": 900,
        "state": "captured",
    }
    assert accounts.require(name).balance_micros == 9_100
    assert usage["balance_micros"] == 9_100 and usage["open_holds"] == []
    assert usage["charges"]["blur"] == {"jobs": 1, "megapixels": 3.0, "amount_micros": 900}
    assert _problems(dir_fleet, name) == []


def test_a_failed_job_releases_its_hold(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=50_000)
    with dir_fleet.client(key) as client:
        junk = b"\x89PNG\r\n\x1a\n not really"
        client.put("/v1/objects/junk.png", content=junk).raise_for_status()
        job = client.post(
            "/v1/jobs?wait=60", json={"operation": "blur", "input": "junk.png"}
        ).json()
    assert job["status"] == "failed" and job["error"]["code"] == "IMAGE_PARSE_FAILED"
    assert job["billing"]["state"] == "released" and job["billing"]["charged_micros"] == 0
    # An unreadable header holds the price of the megapixel limit, never the 1 MP minimum.
    assert job["billing"]["quoted_micros"] == float(TEST_MAX_MEGAPIXELS) * 300
    account = accounts.require(name)
    assert (account.balance_micros, account.held_micros) == (50_000, 0)
    kinds = [e["kind"] for e in accounts.ledger.entries(name) if e["job"] == job["id"]]
    assert kinds == ["hold", "release"]


def test_200_parallel_submissions_against_150_jobs_of_credit(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=150 * PRICE_METADATA, rate=100_000)
    with dir_fleet.client(key) as client:
        _upload(client, "m.png", np.zeros((10, 10, 3), np.uint8))

    def submit(_: int) -> tuple[int, str | None]:
        with dir_fleet.client(key) as c:
            r = c.post("/v1/jobs", json={"operation": "metadata", "input": "m.png"})
            return r.status_code, r.json().get("id")

    lowest = [accounts.require(name).available_micros]
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(submit, i) for i in range(200)]
        while not all(f.done() for f in futures):
            lowest.append(accounts.require(name).available_micros)
            time.sleep(0.01)
    results = [f.result() for f in futures]
    accepted = [job for status, job in results if status == 202]
    assert len(accepted) == 150
    assert sorted({status for status, _ in results}) == [202, 402]
    assert min(lowest) >= 0
    with dir_fleet.client(key) as client:
        for job_id in accepted:
            assert job_id is not None
            assert wait_for_job(client, job_id, timeout=120)["status"] == "succeeded"
    account = accounts.require(name)
    assert (account.balance_micros, account.held_micros) == (0, 0)
    assert _problems(dir_fleet, name) == []


def _pool_children(fleet: Fleet, pool: str) -> list[int]:
    table = process_table()
    masters = {
        pid
        for pid, (ppid, args) in table.items()
        if ppid == fleet.child.pid and f"--pool {pool}" in args
    }
    return [pid for pid, (ppid, _) in table.items() if ppid in masters]


def test_a_worker_killed_mid_job_is_charged_exactly_once(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=1_000_000)
    slow = {
        "operation": "pipeline",
        "input": "slow.jpg",
        # the longest pipeline (10 steps): seconds of work, so the kill lands mid-job
        "steps": [{"operation": "blur", "sigma": 60}] * 10,
    }
    with dir_fleet.client(key) as client:
        client.put(
            "/v1/objects/slow.jpg",
            content=images.encode(images.photo_like(3000, 2000, seed=4), "JPEG"),
        ).raise_for_status()
        job_id = client.post("/v1/jobs", json=slow).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.1)
        for pid in _pool_children(dir_fleet, "cpu"):
            os.kill(pid, signal.SIGKILL)  # the job's process dies mid-work
        job = wait_for_job(client, job_id, timeout=180)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2  # redelivered after the kill
    kinds = [e["kind"] for e in accounts.ledger.entries(name) if e["job"] == job_id]
    assert kinds.count("hold") == 1 and kinds.count("capture") == 1
    price = 300 * 6 * 10  # each of the 10 steps creates 6 MP, at 300 micros per MP
    assert accounts.require(name).balance_micros == 1_000_000 - price
    assert job["billing"]["charged_micros"] == price
    assert _problems(dir_fleet, name) == []


def test_idempotency_keys(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet, credit=1_000_000)
    body = {"operation": "metadata", "input": "i.png"}
    with dir_fleet.client(key) as client:
        _upload(client, "i.png", np.zeros((10, 10, 3), np.uint8))
        first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
        again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
        other = client.post(  # the same key with another body
            "/v1/jobs",
            json={"operation": "grayscale", "input": "i.png"},
            headers={"Idempotency-Key": "order-1"},
        )
    assert first.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"

    def duplicate(_: int) -> str:
        with dir_fleet.client(key) as c:
            r = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-2"})
            assert r.status_code == 202, r.text
            return r.json()["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(duplicate, range(20)))
    assert len(ids) == 1
    holds = [e for e in accounts.ledger.entries(name) if e["kind"] == "hold"]
    assert len(holds) == 2  # order-1 and order-2, one hold each
    with dir_fleet.client(key) as client:
        assert wait_for_job(client, ids.pop())["status"] == "succeeded"


def test_a_key_claimed_by_a_request_that_died_is_taken_over(dir_fleet: Fleet) -> None:
    """A gateway that lost Redis mid-admission leaves a claim whose job was never made;
    the client's retry with the same key gets a job, not "still in progress" forever."""
    from gateway.idempotency import ABANDONED_SECONDS, Idempotency, body_hash

    accounts, name, key = _account(dir_fleet, credit=1_000_000)
    body = {"operation": "metadata", "input": "a.png"}
    stamp = int((time.time() - ABANDONED_SECONDS - 5) * 1000)
    lost_job = f"job_{stamp:012x}{'cd' * 10}"
    claims = Idempotency(accounts.redis, JobStore(accounts.redis, 60).get)
    raw = httpx.Request("POST", "/", json=body).content
    accounts.redis.set(claims._key(name, "order-3"), f"{body_hash(raw)}:{lost_job}")
    with dir_fleet.client(key) as client:
        _upload(client, "a.png", np.zeros((8, 8, 3), np.uint8))
        retry = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-3"})
        assert retry.status_code == 202, retry.text
        assert retry.json()["id"] != lost_job
        again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-3"})
    assert again.json()["id"] == retry.json()["id"]  # the new claim holds from then on


def test_accounts_see_only_their_own_jobs_objects_and_listing(dir_fleet: Fleet) -> None:
    _, _, key_a = _account(dir_fleet, credit=100_000)
    _, _, key_b = _account(dir_fleet, credit=100_000)
    with dir_fleet.client(key_a) as a, dir_fleet.client(key_b) as b:
        _upload(a, "mine.png", np.zeros((8, 8, 3), np.uint8))
        job = a.post("/v1/jobs?wait=30", json={"operation": "metadata", "input": "mine.png"}).json()
        assert b.get(f"/v1/jobs/{job['id']}").status_code == 404
        assert b.get("/v1/objects/mine.png").status_code == 404
        assert job["id"] in [j["id"] for j in a.get("/v1/jobs").json()["jobs"]]
        assert b.get("/v1/jobs").json()["jobs"] == []
        assert a.get("/v1/jobs?status=failed").json()["jobs"] == []


def test_rate_limit_answers_429_with_retry_after(dir_fleet: Fleet) -> None:
    _, _, key = _account(dir_fleet, credit=0, rate=1)  # bursts of 2
    with dir_fleet.client(key) as client:
        codes = [client.get("/v1/usage") for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].json()["error"]["code"] == "RATE_LIMITED"
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert codes[0].status_code == 200


def test_cli_accounts_rotate_disable_and_reconcile(dir_fleet: Fleet) -> None:
    env = dict(os.environ, FLEET_REDIS_URL=dir_fleet.redis_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imagefleet.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    name = f"cli{secrets.token_hex(4)}"
    created = cli("accounts", "create", "--name", name, "--credit", "25.00")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split("API key (shown once; only its hash is stored): ")[1].split()[0]
    assert "whsec_" in created.stdout
    assert f"{name}" in cli("accounts", "list").stdout
    assert '"balance_micros": 25000000' in cli("accounts", "show", name).stdout
    assert (
        httpx.get(
            f"{dir_fleet.base_url}/v1/usage", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 200
    )
    new_key = cli("accounts", "rotate-key", name).stdout.split(": ")[-1].strip()
    assert (
        httpx.get(
            f"{dir_fleet.base_url}/v1/usage", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{dir_fleet.base_url}/v1/usage", headers={"Authorization": f"Bearer {new_key}"}
        ).json()["balance_micros"]
        == 25_000_000
    )
    assert cli("accounts", "disable", name).returncode == 0
    assert (
        httpx.get(
            f"{dir_fleet.base_url}/v1/usage", headers={"Authorization": f"Bearer {new_key}"}
        ).status_code
        == 401
    )

    client = redis.Redis.from_url(dir_fleet.redis_url)
    client.hincrby(f"imagefleet:account:{name}", "balance", 1)  # tamper with the books
    try:
        broken = cli("billing", "reconcile")
        assert broken.returncode == 1 and f"MISMATCH {name}: balance" in broken.stdout
    finally:
        client.hincrby(f"imagefleet:account:{name}", "balance", -1)
