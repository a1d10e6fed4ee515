"""Megapixels of an input: width x height / 1e6 for every frame, minimum 1 per job."""

from __future__ import annotations

from collections.abc import Iterable


def megapixels(width: int, height: int, frames: int = 1) -> float:
    return total_megapixels([(width, height, frames)])


def total_megapixels(inputs: Iterable[tuple[int, int, int]]) -> float:
    """The billed megapixels of all metered inputs (width, height, frames), minimum 1."""
    return max(1.0, sum(w * h * max(1, f) for w, h, f in inputs) / 1e6)
