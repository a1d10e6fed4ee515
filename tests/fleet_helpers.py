"""Small helpers shared by tests that talk to a running fleet."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import numpy as np

from tests import images

TERMINAL = ("succeeded", "failed", "canceled")


def upload_examples(client: httpx.Client) -> None:
    # Stored 720x960 with orientation 6: upright 960x720, enough for the crop example.
    photo = images.encode(images.photo_like(720, 960, seed=7), "JPEG", orientation=6, quality=90)
    logo = np.zeros((60, 120, 4), np.uint8)
    logo[10:50, 10:110] = (200, 30, 30, 255)
    client.put("/v1/objects/photo.jpg", content=photo).raise_for_status()
    client.put("/v1/objects/logo.png", content=images.encode(logo)).raise_for_status()
    scan = images.text_image(["Invoice 2041 for ACME", "Rechnung bezahlt"])
    client.put("/v1/objects/scan.png", content=scan).raise_for_status()


# Fields that differ between any two messages: fresh ids, and the queue it was sent to.
_PER_MESSAGE = ("id", "root_id", "correlation_id", "delivery_tag", "routing_key")


def normalised_message(raw: bytes) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))

    def blank(node: object) -> object:
        if isinstance(node, dict):
            return {k: "*" if k in _PER_MESSAGE else blank(v) for k, v in node.items()}
        return node

    return blank(message)  # type: ignore[return-value]


def send_task_probe(connection: Any, client: Any) -> bytes:
    """What Celery's own `send_task` pushes for job-1's run (an ocr job with the configured
    limits), sent over `connection` to a fresh queue no worker reads and popped with the
    Redis `client`."""
    from imagefleet.dispatch import RUN_JOB, app, time_limits
    from imagefleet.settings import load_settings

    probe = f"probe-{uuid.uuid4().hex}"
    soft, hard = time_limits("ocr", load_settings())
    app.send_task(
        RUN_JOB,
        args=["job-1"],
        queue=probe,
        connection=connection,
        soft_time_limit=soft,
        time_limit=hard,
    )
    theirs = client.lpop(probe)
    client.delete(f"_kombu.binding.{probe}", f"_kombu.binding_permanent.{probe}")
    assert isinstance(theirs, bytes)
    return theirs


def wait_all_ended(
    client: httpx.Client, ids: list[str], timeout: float, webhooks_settled: bool = False
) -> dict[str, dict[str, Any]]:
    """The jobs of `ids` that ended within `timeout` (polled through the API; a poll that
    fails starts the round again), and with `webhooks_settled` only those whose webhook
    was delivered or given up on too."""
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id in ended:
                continue
            try:
                job = client.get(f"/v1/jobs/{job_id}").json()
            except (httpx.TransportError, ValueError):
                break
            webhook = job.get("webhook") or {}
            if job.get("status") in TERMINAL and not (
                webhooks_settled and webhook.get("state") in ("pending", "retrying")
            ):
                ended[job_id] = job
        time.sleep(0.5)
    return ended
