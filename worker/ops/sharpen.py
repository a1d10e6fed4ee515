"""sharpen: an unsharp mask, out = frame + amount * (frame - gaussian(frame, sigma)).

amount is fixed at 1.0 (add back the detail once: a clear but not halo-heavy sharpen; the
spec has no amount). sharp sharpens only L* in Lab with a more elaborate curve; this
simpler RGB mask is the documented choice here. Alpha is kept as is.
"""

from __future__ import annotations

import numpy as np

from jobs.tone import SharpenJob
from worker.ops import OpOutput
from worker.ops.blur import gaussian
from worker.picture import Frame, Picture, to_dtype

AMOUNT = 1.0


def sharpen_frame(frame: Frame, sigma: float) -> Frame:
    colour = frame[:, :, :3].astype(np.float32)
    detail = colour - gaussian(colour, sigma)
    out = frame.copy()
    out[:, :, :3] = to_dtype(colour + AMOUNT * detail, frame.dtype)  # clipped to the dtype
    return out


def sharpen(inputs: list[Picture], spec: SharpenJob) -> OpOutput:
    return OpOutput(inputs[0].map(lambda frame: sharpen_frame(frame, spec.sigma)))
