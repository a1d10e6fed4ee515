"""The worker pools: one Celery queue each, declared once. Operations name the pool they
run on (jobs/registry.py); the fleet starts one worker per pool (imagefleet/fleet.py)."""

from __future__ import annotations

from enum import StrEnum


class Pool(StrEnum):
    CPU = "cpu"  # Pillow + OpenCV
    OCR = "ocr"  # Tesseract
    RENDER = "render"  # headless Chromium: one browser per process, so few processes
    WEBHOOKS = "webhooks"  # network waits, not CPU

    def default_processes(self, cores: int) -> int:
        """Worker processes a local fleet starts for this pool on a machine of `cores`."""
        return {Pool.RENDER: 1, Pool.WEBHOOKS: 2}.get(self, cores)


# The pools that run jobs (the webhooks pool delivers their webhooks).
JOB_POOLS = (Pool.CPU, Pool.OCR, Pool.RENDER)
