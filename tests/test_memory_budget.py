"""Peak memory of the hungriest operations stays within worker/budget.py.

Each case runs in a fresh interpreter (bench.memory) on a synthetic ~8 MP raster: the peak
RSS growth while the operation runs - its output included, its inputs not - divided by
the largest raster's pixels. Before the strip and plane rewrite adjust grew ~115 bytes a
pixel, blur ~65, composite ~117, contact-sheet ~48, rotate 45 and resize up ~80.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.memory import run_case
from worker.budget import allowed

CASES = [
    "adjust/rgba",  # brightness + saturation + tint: Lab work on every pixel
    "resize-up/rgba",  # ~2 MP with alpha up to ~8 MP (Lanczos on premultiplied floats)
    "rotate-45/rgba",  # ~4 MP to ~8 MP
    "contact-sheet/rgba",  # 100 cells
    "blur/rgba",
    "composite/rgba",  # an overlay as large as the base
]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/self/status").exists(),
    reason="reads VmHWM from /proc",
)
@pytest.mark.parametrize("case", CASES)
def test_peak_memory_within_budget(case: str) -> None:
    result = run_case(case, megapixels=8)
    pixels = result["largest_pixels"]
    assert pixels >= 7_500_000  # the case really is ~8 MP
    limit = allowed(result["operation"], pixels)
    assert result["growth"] <= limit, (
        f"{case}: peak grew {result['growth'] / 2**20:.0f} MB"
        f" ({result['bytes_per_pixel']} bytes/pixel of {pixels / 1e6:.1f} MP); the budget"
        f" allows {limit / 2**20:.0f} MB"
    )
