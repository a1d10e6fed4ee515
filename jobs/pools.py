"""The worker pools: one Celery queue each, declared once. Operations name the pool they
run on (jobs/registry.py); the fleet starts one worker per pool (imagefleet/fleet.py)."""

from __future__ import annotations

from enum import StrEnum


class Pool(StrEnum):
    CPU = "cpu"  # Pillow + OpenCV
    OCR = "ocr"  # Tesseract
    RENDER = "render"  # headless Chromium: one browser per process, so few processes
    WEBHOOKS = "webhooks"  # network waits, not CPU: webhook deliveries
    PAYMENTS = "payments"  # x402 settlements, never queued behind a webhook

    def default_processes(self, cores: int) -> int:
        """Worker processes (threads, on a waiting pool) a local fleet starts for this
        pool on a machine of `cores`."""
        return {Pool.RENDER: 1, Pool.WEBHOOKS: 16, Pool.PAYMENTS: 4}.get(self, cores)

    @property
    def waits(self) -> bool:
        """Its tasks wait on the network: it runs Celery's threads pool, not processes."""
        return self in (Pool.WEBHOOKS, Pool.PAYMENTS)


# The pools that run jobs (the webhooks pool delivers their webhooks, the payments pool
# settles their x402 payments).
JOB_POOLS = (Pool.CPU, Pool.OCR, Pool.RENDER)
