"""from-html helpers shared by the render tests: a two-colour card and a job runner."""

from __future__ import annotations

import io

import httpx
import numpy as np
from PIL import Image

from tests.fleet_harness import Fleet, descendants, process_table

CARD = (
    '<body style="margin:0;background:#ffffff">'
    '<div style="width:200px;height:100px;background:#1e90ff"></div>'
    '<div style="width:200px;height:100px;background:#ff4500"></div></body>'
)


def render(client: httpx.Client, body: dict) -> tuple[dict, np.ndarray | None]:
    response = client.post("/v1/jobs?wait=60", json={"operation": "from-html", **body})
    assert response.status_code == 200, response.text
    job = response.json()
    if job["status"] != "succeeded":
        return job, None
    data = client.get(f"/v1/objects/{job['result']['output']}").content
    return job, np.asarray(Image.open(io.BytesIO(data)))


def render_worker_browsers(fleet: Fleet) -> list[int]:
    """Main Chromium processes (a child of a non-Chromium process) under this fleet."""
    table = process_table()

    def args(pid: int) -> str:
        return table.get(pid, (0, ""))[1]

    return [
        pid
        for pid in descendants(fleet.child.pid, table)
        if "chrom" in args(pid) and "chrom" not in args(table[pid][0])
    ]
