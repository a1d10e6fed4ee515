"""The production stack, run for real: compose.yaml on a Docker engine, every image built
here from Debian packages and PyPI (deploy/stack.py), three worker-cpu containers, two
gateway replicas behind HAProxy, Redis, SeaweedFS S3, Flower.

Through the load balancer: the README's quickstart crop and one job of every pool (a webhook
delivered to a receiver container on the stack's network), and Flower behind its basic auth.
The fault run on the same stack is tests/test_stack_faults.py; the stack (tests/conftest.py's
fleet_stack, tests/stack_harness.py) is started once per session for both.

Where no Docker engine can run (not root, docker.io missing), the module is skipped with the
reason; FLEET_SKIP_STACK=1 skips it too. Images are reused when their inputs are unchanged.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from imagefleet.client import verify_webhook
from tests import images
from tests.stack_harness import Stack, api_client, docker, text_png, wait_job

pytestmark = pytest.mark.fleet  # starts its own servers


@pytest.fixture(scope="module")
def account(fleet_stack: Stack) -> tuple[str, str]:
    return fleet_stack.create_account("quickstart", "100.00")


def test_readme_quickstart_crop_through_the_load_balancer(
    fleet_stack: Stack, account: tuple[str, str]
) -> None:
    key, _ = account
    photo = images.encode(images.photo_like(1000, 700, seed=5), "JPEG", quality=90)
    with api_client(fleet_stack, key) as client:
        client.put("/v1/objects/photo.jpg", content=photo).raise_for_status()  # 1. upload
        submitted = client.post(
            "/v1/jobs",
            json={  # 2. submit the crop
                "operation": "crop",
                "input": "photo.jpg",
                "output": "cropped.jpg",
                "rect": {"x": 100, "y": 50, "width": 800, "height": 600},
                "format": "jpeg",
                "quality": 90,
            },
        )
        assert submitted.status_code == 202, submitted.text
        job = wait_job(client, submitted.json()["id"])  # 3. poll
        assert job["status"] == "succeeded", job
        assert job["result"]["crop"] == {"x": 100, "y": 50, "width": 800, "height": 600}
        data = client.get("/v1/objects/cropped.jpg").raise_for_status().content  # 4. download
    with Image.open(io.BytesIO(data)) as out:
        assert (out.format, out.size) == ("JPEG", (800, 600))


def test_one_job_of_every_pool_and_a_webhook_to_another_container(
    fleet_stack: Stack, account: tuple[str, str], stack_receiver: str
) -> None:
    key, webhook_secret = account
    with api_client(fleet_stack, key) as client:
        client.put(
            "/v1/objects/pools.jpg",
            content=images.encode(images.photo_like(640, 480, seed=2), "JPEG"),
        ).raise_for_status()
        client.put("/v1/objects/text.png", content=text_png("Hello stack 42")).raise_for_status()
        bodies = {
            "cpu": {"operation": "resize", "input": "pools.jpg", "width": 320},
            "ocr": {"operation": "ocr", "input": "text.png"},
            "render": {
                "operation": "from-html",
                "html": "<h1>Stack 你好</h1>",
                "width": 400,
                "height": 200,
            },
            "webhooks": {
                "operation": "grayscale",
                "input": "pools.jpg",
                "webhook_url": "http://hooks:9000/imagefleet",
            },
        }
        jobs = {}
        for pool, body in bodies.items():
            response = client.post("/v1/jobs", json=body)
            assert response.status_code == 202, (pool, response.text)
            jobs[pool] = response.json()["id"]
        ended = {pool: wait_job(client, job_id) for pool, job_id in jobs.items()}
    for pool, job in ended.items():
        assert job["status"] == "succeeded", (pool, job)
    assert (ended["cpu"]["result"]["width"], ended["cpu"]["result"]["height"]) == (320, 240)
    assert "stack" in ended["ocr"]["result"]["text"].lower(), ended["ocr"]["result"]
    assert (ended["render"]["result"]["width"], ended["render"]["result"]["height"]) == (400, 200)
    deadline = time.monotonic() + 60
    while not (calls := fleet_stack.hooks(stack_receiver)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert calls, "no webhook reached the receiver container"
    call = calls[0]
    event = verify_webhook(call["headers"], call["body"].encode(), secret=webhook_secret)
    assert event["id"] == jobs["webhooks"] and event["status"] == "succeeded"
    assert call["path"] == "/imagefleet"


def test_flower_is_on_loopback_behind_basic_auth_and_sees_the_workers(
    fleet_stack: Stack, account: tuple[str, str]
) -> None:
    flower = fleet_stack.container("flower")
    bindings = json.loads(
        docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", flower).stdout
    )
    assert [b["HostIp"] for b in bindings["5555/tcp"]] == ["127.0.0.1"], bindings
    url = f"http://127.0.0.1:{fleet_stack.flower_port}"
    user, password = fleet_stack.flower_auth.split(":", 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            anonymous = httpx.get(f"{url}/api/workers", timeout=10)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert anonymous.status_code == 401
    assert httpx.get(f"{url}/api/workers", auth=(user, "wrong"), timeout=10).status_code == 401
    workers = httpx.get(f"{url}/api/workers?refresh=1", auth=(user, password), timeout=30)
    assert workers.status_code == 200
    assert sum(name.startswith("cpu-") for name in workers.json()) >= 3, workers.json()
    # Task events: a job run now must show up in Flower's task list.
    key, _ = account
    with api_client(fleet_stack, key) as client:
        client.put(
            "/v1/objects/flower.jpg",
            content=images.encode(images.photo_like(64, 48, seed=1), "JPEG"),
        ).raise_for_status()
        job_id = (
            client.post("/v1/jobs", json={"operation": "metadata", "input": "flower.jpg"})
            .raise_for_status()
            .json()["id"]
        )
        assert wait_job(client, job_id)["status"] == "succeeded"
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        tasks = httpx.get(f"{url}/api/tasks", auth=(user, password), timeout=10).json()
        seen = {k: t for k, t in tasks.items() if job_id in str(t.get("args"))}
        time.sleep(1)
    assert seen, "Flower never saw the job's task"
