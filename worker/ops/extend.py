"""extend: pad any side with a colour, or with copied, tiled or mirrored pixels (as sharp).

Also home of the colour-fill helpers that resize (contain) and rotate share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from jobs.geometry import ExtendJob
from jobs.spec import rgba_of
from worker.ops import OpOutput
from worker.picture import Frame, Picture, max_value

if TYPE_CHECKING:
    from imagefleet.settings import Settings

RGBA = tuple[int, int, int, int]
OPAQUE_BLACK: RGBA = (0, 0, 0, 255)  # sharp's default extend background

# np.pad modes for sharp's `extendWith`. libvips' mirror repeats the edge pixel: "symmetric".
PAD_MODES: dict[str, Literal["edge", "wrap", "symmetric"]] = {
    "copy": "edge",
    "repeat": "wrap",
    "mirror": "symmetric",
}


def fill_pixel(frame: Frame, rgba: RGBA) -> np.ndarray:
    """`rgba` (0..255) in the frame's dtype and channel count (257 maps 255 to 65535)."""
    scale = 257 if frame.dtype == np.uint16 else 1
    return (np.array(rgba[: frame.shape[2]], np.uint32) * scale).astype(frame.dtype)


def pad_with_colour(
    frame: Frame, top: int, bottom: int, left: int, right: int, rgba: RGBA
) -> Frame:
    """The frame on a `rgba` canvas; opaque frames gain alpha when the fill is translucent
    (so its transparency survives), written straight into the canvas."""
    h, w, channels = frame.shape
    if rgba[3] < 255:
        channels = 4
    out = np.empty((h + top + bottom, w + left + right, channels), frame.dtype)
    out[...] = fill_pixel(out, rgba)
    inner = out[top : top + h, left : left + w]
    inner[:, :, : frame.shape[2]] = frame
    if frame.shape[2] < channels:
        inner[:, :, 3] = max_value(frame)
    return out


def extend(inputs: list[Picture], spec: ExtendJob, cfg: Settings) -> OpOutput:
    picture = inputs[0]
    picture.check_output(
        picture.width + spec.left + spec.right, picture.height + spec.top + spec.bottom
    )
    if spec.extend_with == "background":
        rgba = rgba_of(spec.background, OPAQUE_BLACK)
        return OpOutput(
            picture.map(
                lambda f: pad_with_colour(f, spec.top, spec.bottom, spec.left, spec.right, rgba)
            )
        )
    mode = PAD_MODES[spec.extend_with]
    widths = ((spec.top, spec.bottom), (spec.left, spec.right), (0, 0))
    return OpOutput(picture.map(lambda f: np.pad(f, widths, mode=mode)))
