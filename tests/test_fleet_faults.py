"""Failures that end in a documented code, never a 500 or a hung job."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from imagefleet import procs
from tests import images
from tests.fleet_harness import Fleet, start_fleet

pytestmark = pytest.mark.fleet  # starts its own servers


def test_gateway_without_redis_answers_503_unavailable(tmp_path: Path) -> None:
    port, dead = procs.free_port(), procs.free_port()  # nothing listens on `dead`
    env = dict(
        os.environ,
        FLEET_PORT=str(port),
        FLEET_VAR_DIR=str(tmp_path),
        FLEET_REDIS_URL=f"redis://127.0.0.1:{dead}/0",
    )
    gateway = procs.spawn(
        "gateway",
        [sys.executable, "-m", "imagefleet.cli", "gateway"],
        env,
        log_file=tmp_path / "gateway.log",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_until(lambda: procs.http_ok(f"{base}/livez"), 30, "gateway")
        response = httpx.post(
            f"{base}/v1/jobs",
            headers={"Authorization": "Bearer k"},
            json={"operation": "grayscale", "input": "a.png"},
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "UNAVAILABLE"
        assert response.headers["Retry-After"]
        health = httpx.get(f"{base}/healthz", timeout=10)  # what load balancers probe
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is not True
    finally:
        gateway.stop()


def test_a_redis_outage_is_503_one_warning_per_request_and_an_unhealthy_gateway(
    tmp_path: Path,
) -> None:
    """Redis dies under a running gateway: each request is a 503 with Retry-After and one
    WARNING line (no ERROR traceback beside it), /healthz fails (load balancers take the
    gateway out) while /livez still answers, and all is well once Redis is back."""
    from billing.accounts import Accounts

    redis_port, port = procs.free_port(), procs.free_port()
    argv = procs.redis_argv(redis_port, tmp_path / "redis")
    redis_child = procs.spawn("redis", argv)
    env = dict(
        os.environ,
        FLEET_PORT=str(port),
        FLEET_VAR_DIR=str(tmp_path),
        FLEET_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
    )
    env.pop("FLEET_BROKER_URL", None)
    log_file = tmp_path / "gateway.log"
    gateway = procs.spawn(
        "gateway", [sys.executable, "-m", "imagefleet.cli", "gateway"], env, log_file=log_file
    )
    try:
        procs.wait_until(lambda: procs.port_open(redis_port), 20, "redis")
        import redis

        _, key = Accounts(redis.Redis.from_url(env["FLEET_REDIS_URL"])).create("outage", 10**6)
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        procs.wait_until(lambda: procs.http_ok(f"{base}/healthz"), 30, "gateway")
        assert httpx.get(f"{base}/v1/usage", headers=headers).status_code == 200
        before = log_file.stat().st_size

        redis_child.stop(grace=0)  # gone, as a crashed or failed-over Redis is
        requests = [
            ("POST", "/v1/jobs"),
            ("GET", "/v1/usage"),
            ("GET", "/v1/jobs"),
            ("GET", "/v1/jobs/job_0123"),
        ]
        for method, path in requests:
            reply = httpx.request(
                method,
                base + path,
                headers=headers,
                timeout=30,
                json={"operation": "grayscale", "input": "a.png"} if method == "POST" else None,
            )
            assert reply.status_code == 503, (path, reply.text)
            assert reply.json()["error"]["code"] == "UNAVAILABLE"
            assert reply.headers["Retry-After"]
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 503
        assert httpx.get(f"{base}/livez", timeout=10).status_code == 200
        time.sleep(0.5)  # let the last lines reach the log
        lines = log_file.read_bytes()[before:].decode(errors="replace").splitlines()
        assert not [
            line
            for line in lines
            if "Exception in ASGI application" in line or "Traceback" in line or " ERROR " in line
        ], "\n".join(lines)
        warnings = [line for line in lines if "redis unavailable on" in line]
        assert len(warnings) == len(requests), "\n".join(lines)

        redis_child = procs.spawn("redis", argv)  # back, with its append-only file
        procs.wait_until(lambda: procs.http_ok(f"{base}/healthz"), 30, "healthy again")
        assert httpx.get(f"{base}/v1/usage", headers=headers).status_code == 200
    finally:
        gateway.stop()
        redis_child.stop()


@pytest.fixture(scope="module")
def impatient_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(
        tmp_path_factory.mktemp("impatient") / "var",
        {"FLEET_SOFT_TIME_LIMIT": "1", "FLEET_HARD_TIME_LIMIT": "20"},
    )
    yield fleet
    fleet.stop()


def test_a_job_over_its_time_limit_fails_timeout_and_the_pool_keeps_serving(
    impatient_fleet: Fleet,
) -> None:
    # ~24 MP blurred five times with sigma 1000: seconds of work against a 1 s soft limit.
    big = images.encode(images.photo_like(6000, 4000, seed=3), "JPEG", quality=80)
    slow = {
        "operation": "pipeline",
        "input": "big.jpg",
        "steps": [{"operation": "blur", "sigma": 1000}] * 5,
    }
    with impatient_fleet.client() as client:
        client.put("/v1/objects/big.jpg", content=big).raise_for_status()
        job = client.post("/v1/jobs?wait=60", json=slow).json()
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "TIMEOUT"
        client.put(
            "/v1/objects/small.png", content=images.encode(np.zeros((8, 8, 3), np.uint8))
        ).raise_for_status()
        after = client.post(
            "/v1/jobs?wait=30", json={"operation": "grayscale", "input": "small.png"}
        ).json()
        assert after["status"] == "succeeded", after


def test_deep_queues_push_back_with_503_and_retry_after(tmp_path: Path) -> None:
    """A gateway with no workers: the cpu queue only grows, until the gateway refuses."""
    import redis

    from billing.accounts import Accounts

    redis_port, port = procs.free_port(), procs.free_port()
    redis_child = procs.spawn("redis", procs.redis_argv(redis_port, tmp_path / "redis"))
    env = dict(
        os.environ,
        FLEET_PORT=str(port),
        FLEET_VAR_DIR=str(tmp_path),
        FLEET_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        FLEET_MAX_QUEUE_DEPTH="3",
    )
    env.pop("FLEET_BROKER_URL", None)
    gateway = procs.spawn(
        "gateway",
        [sys.executable, "-m", "imagefleet.cli", "gateway"],
        env,
        log_file=tmp_path / "gateway.log",
    )
    try:
        procs.wait_until(lambda: procs.port_open(redis_port), 20, "redis")
        client = redis.Redis.from_url(env["FLEET_REDIS_URL"])
        accounts = Accounts(client)
        _, key = accounts.create("pressure", 1_000_000)
        base = f"http://127.0.0.1:{port}"
        procs.wait_until(lambda: procs.http_ok(f"{base}/healthz"), 30, "gateway")
        headers = {"Authorization": f"Bearer {key}"}
        httpx.put(
            f"{base}/v1/objects/q.png",
            headers=headers,
            content=images.encode(np.zeros((8, 8, 3), np.uint8)),
        ).raise_for_status()
        body = {"operation": "grayscale", "input": "q.png"}
        codes = [httpx.post(f"{base}/v1/jobs", json=body, headers=headers) for _ in range(5)]
        assert [r.status_code for r in codes] == [202, 202, 202, 503, 503]
        assert codes[3].json()["error"]["code"] == "UNAVAILABLE"
        assert codes[3].headers["Retry-After"] == "5"
        assert client.llen("cpu") == 3  # the refused ones were never queued ...
        assert accounts.require("pressure").held_micros == 3 * 300  # ... nor held
    finally:
        gateway.stop()
        redis_child.stop()
