"""Megapixels of an input: width x height / 1e6 for every frame, minimum 1."""

from __future__ import annotations


def megapixels(width: int, height: int, frames: int = 1) -> float:
    return max(1.0, width * height * max(1, frames) / 1e6)
