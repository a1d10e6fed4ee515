"""sharpen: an unsharp mask, out = frame + amount * (frame - gaussian(frame, sigma)).

amount is fixed at 1.0 (add back the detail once: a clear but not halo-heavy sharpen; the
spec has no amount). sharp sharpens only L* in Lab with a more elaborate curve; this
simpler RGB mask is the documented choice here. Alpha is kept as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jobs.tone import SharpenJob
from worker.ops import OpOutput
from worker.ops.blur import gaussian
from worker.picture import Frame, Picture, strips, to_dtype

if TYPE_CHECKING:
    from imagefleet.settings import Settings

AMOUNT = 1.0


def sharpen_frame(frame: Frame, sigma: float) -> Frame:
    out = np.empty(frame.shape, frame.dtype)
    if frame.shape[2] == 4:
        out[:, :, 3] = frame[:, :, 3]
    for channel in range(3):  # one float plane at a time, blurred in place
        soft = gaussian(frame[:, :, channel].astype(np.float32), sigma)
        for rows in strips(frame):
            colour = frame[rows, :, channel].astype(np.float32)
            detail = colour - soft[rows]
            out[rows, :, channel] = to_dtype(colour + AMOUNT * detail, frame.dtype)  # clipped
        del soft  # before the next plane is made
    return out


def sharpen(inputs: list[Picture], spec: SharpenJob, cfg: Settings) -> OpOutput:
    return OpOutput(inputs[0].map(lambda frame: sharpen_frame(frame, spec.sigma)))
