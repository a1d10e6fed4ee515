"""grayscale: Rec.709 luminance, Y = 0.2126 R + 0.7152 G + 0.0722 B (libvips's weights).

The weights apply to the stored (gamma-encoded sRGB) values, so a flat colour maps to one
predictable grey. The result keeps three equal channels (plus alpha, untouched): the
encoder writes equal-channel frames as greyscale, and later ops still see RGB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jobs.tone import GrayscaleJob
from worker.ops import OpOutput
from worker.picture import Frame, Picture, strips, to_dtype

if TYPE_CHECKING:
    from imagefleet.settings import Settings

REC709 = np.array([0.2126, 0.7152, 0.0722], np.float32)


def grayscale_frame(frame: Frame) -> Frame:
    out = np.empty(frame.shape, frame.dtype)
    for rows in strips(frame):  # float temporaries a strip at a time
        luma = to_dtype(frame[rows, :, :3].astype(np.float32) @ REC709, frame.dtype)
        out[rows, :, :3] = luma[:, :, None]
    if frame.shape[2] == 4:
        out[:, :, 3] = frame[:, :, 3]
    return out


def grayscale(inputs: list[Picture], spec: GrayscaleJob, cfg: Settings) -> OpOutput:
    return OpOutput(inputs[0].map(grayscale_frame))
