"""Prometheus metrics from the gateway and the workers; JSON log lines with the job id."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import numpy as np
import redis

from imagefleet import logs, metrics
from tests import images
from tests.fleet_harness import Fleet


def _value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{wanted}}} in /metrics")


def test_metrics_count_requests_jobs_failures_and_queues(dir_fleet: Fleet) -> None:
    before = httpx.get(f"{dir_fleet.base_url}/metrics").text
    with dir_fleet.client() as client:
        client.put("/v1/objects/m.png", content=images.encode(np.zeros((8, 8, 3), np.uint8)))
        client.put("/v1/objects/m-bad.png", content=b"\x89PNG\r\n\x1a\nnope")
        ok = client.post("/v1/jobs?wait=30", json={"operation": "sharpen", "input": "m.png"})
        bad = client.post("/v1/jobs?wait=30", json={"operation": "sharpen", "input": "m-bad.png"})
    assert ok.json()["status"] == "succeeded" and bad.json()["status"] == "failed"
    after = httpx.get(f"{dir_fleet.base_url}/metrics").text

    def grew(name: str, **labels: str) -> float:
        try:
            start = _value(before, name, **labels)
        except AssertionError:
            start = 0.0
        return _value(after, name, **labels) - start

    assert grew("imagefleet_http_requests_total", method="POST", route="/v1/jobs", code="200") == 2
    assert grew("imagefleet_job_seconds_count", operation="sharpen", outcome="succeeded") == 1
    assert (
        grew("imagefleet_job_failures_total", operation="sharpen", code="IMAGE_PARSE_FAILED") == 1
    )
    assert _value(after, "imagefleet_jobs", state="succeeded") >= 1
    assert _value(after, "imagefleet_queue_depth", queue="cpu") >= 0
    # Route templates, not raw paths: job ids never become label values.
    assert not re.search(r'route="/v1/jobs/job_', after)


def test_json_log_lines_carry_the_job_id() -> None:
    stream = io.StringIO()
    logs.setup("INFO", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)  # what logs.setup installs
    handler.stream = stream
    try:
        token = logs.current_job.set("job_abc")
        logging.getLogger("imagefleet.worker").info("resized %d frames", 3)
        logs.current_job.reset(token)
        logging.getLogger("imagefleet.gateway").warning("no job here")
    finally:
        logs.setup("INFO", "text")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["job_id"] == "job_abc" and first["message"] == "resized 3 frames"
    assert first["level"] == "info" and first["logger"] == "imagefleet.worker"
    assert "job_id" not in second and second["level"] == "warning"


def test_run_durations_render_as_a_cumulative_histogram(dir_fleet: Fleet) -> None:
    """Each run adds to one bucket only (metrics.add_run); the scrape sums them up."""
    client = redis.Redis.from_url(dir_fleet.redis_url)
    op = "histogram-probe"
    for seconds in (0.005, 0.2, 0.2, 500.0):
        metrics.job_finished(client, op, seconds, None)
    metrics.job_finished(client, op, 0.03, "TIMEOUT")
    text = metrics.render(client, redis_broker=False)
    ok = dict(operation=op, outcome="succeeded")
    assert _value(text, "imagefleet_job_seconds_bucket", **ok, le="0.01") == 1
    assert _value(text, "imagefleet_job_seconds_bucket", **ok, le="0.25") == 3
    assert _value(text, "imagefleet_job_seconds_bucket", **ok, le="120.0") == 3
    assert _value(text, "imagefleet_job_seconds_bucket", **ok, le="+Inf") == 4
    assert _value(text, "imagefleet_job_seconds_count", **ok) == 4
    assert _value(text, "imagefleet_job_seconds_sum", **ok) == 500.405
    failed = dict(operation=op, outcome="failed")
    assert _value(text, "imagefleet_job_seconds_bucket", **failed, le="0.025") == 0
    assert _value(text, "imagefleet_job_seconds_bucket", **failed, le="0.05") == 1
    assert _value(text, "imagefleet_job_failures_total", operation=op, code="TIMEOUT") == 1
