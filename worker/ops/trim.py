"""trim: cut away borders that match the top-left pixel within `threshold` (as sharp)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jobs.geometry import TrimJob
from worker.ops import OpOutput
from worker.ops.gravity import Box
from worker.picture import Frame, Picture, strips

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def trim_box(frame: Frame, threshold: int) -> Box:
    """Bounding box of the pixels differing from the top-left one by more than `threshold`
    in any channel (alpha included); the whole frame when none differs."""
    h, w = frame.shape[:2]
    limit = threshold * (257 if frame.dtype == np.uint16 else 1)  # threshold is in 8-bit units
    corner = frame[0, 0].astype(np.int32)
    row_differs, col_differs = np.zeros(h, bool), np.zeros(w, bool)
    for strip in strips(frame):  # a strip and a channel at a time: small int32 copies
        differs = np.zeros(frame[strip].shape[:2], bool)
        for c in range(frame.shape[2]):
            differs |= np.abs(frame[strip, :, c].astype(np.int32) - corner[c]) > limit
        row_differs[strip] = differs.any(axis=1)
        col_differs |= differs.any(axis=0)
    rows, cols = np.flatnonzero(row_differs), np.flatnonzero(col_differs)
    if rows.size == 0:
        return Box(0, 0, w, h)
    return Box(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def trim(inputs: list[Picture], spec: TrimJob, cfg: Settings) -> OpOutput:
    picture = inputs[0]
    box = trim_box(picture.first, spec.threshold)  # decided once: animation frames stay aligned
    return OpOutput(picture.map(box.cut), {"trim": box.as_dict()})
