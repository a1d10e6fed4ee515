"""`imagefleet up`: Ctrl-C stops every child (no orphans); a restart keeps jobs and objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import images
from tests.fleet_harness import descendants, start_fleet, wait_for_job

pytestmark = pytest.mark.fleet  # starts its own servers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_ctrl_c_leaves_no_process_and_restart_keeps_jobs(tmp_path: Path) -> None:
    var = tmp_path / "var"
    fleet = start_fleet(var)
    try:
        pixels = images.photo_like(60, 40)
        with fleet.client() as client:
            client.put("/v1/objects/keep.png", content=images.encode(pixels)).raise_for_status()
            job_id = client.post(
                "/v1/jobs",
                json={
                    "operation": "crop",
                    "input": "keep.png",
                    "rect": {"x": 0, "y": 0, "width": 10, "height": 10},
                },
            ).json()["id"]
            assert wait_for_job(client, job_id)["status"] == "succeeded"
            rendered = client.post(
                "/v1/jobs?wait=60", json={"operation": "from-html", "html": "<p>hi</p>"}
            ).json()
            assert rendered["status"] == "succeeded", rendered
        # redis, gateway, three worker masters, their pool children, and now Chromium
        family = descendants(fleet.child.pid)
        names = {
            Path(f"/proc/{pid}/comm").read_text().strip()
            for pid in family
            if Path(f"/proc/{pid}/comm").exists()
        }
        assert len(family) >= 6 and any("chrom" in name for name in names), names
    finally:
        fleet.stop()  # SIGINT, as Ctrl-C sends
    assert fleet.child.process.returncode == 0
    leftovers = [pid for pid in family if _alive(pid)]
    assert leftovers == [], leftovers

    again = start_fleet(var)
    try:
        assert again.api_key == fleet.api_key  # the dev key file is reused
        with again.client() as client:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded"
            output = client.get(f"/v1/objects/{job['result']['output']}")
            assert output.status_code == 200
            assert images.decode(output.content).shape == (10, 10, 3)
    finally:
        again.stop()
    assert os.path.exists(var / "redis" / "appendonlydir")
