"""Pixel arrays and in-memory Pictures for the worker-op unit tests (no codec, no fleet)."""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.picture import Picture


def pic(*frames: np.ndarray, fmt: str = "png") -> Picture:
    return Picture(frames=list(frames), format=fmt)


def solid(h: int, w: int, colour: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
    return np.tile(np.array(colour, dtype), (h, w, 1))
