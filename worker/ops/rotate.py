"""rotate: clockwise by any angle (as sharp), then flip (top<->bottom) and flop (left<->right).

Multiples of 90 degrees are exact transposes; other angles expand the canvas to hold the
whole rotated image and fill the uncovered corners with `background` (interpolating
premultiplied alpha, one float plane at a time: see worker.budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from jobs.geometry import RotateJob, rotated_size
from jobs.spec import rgba_of
from worker.ops import OpOutput
from worker.ops.extend import RGBA
from worker.picture import Frame, Picture, filter_planes, max_value

if TYPE_CHECKING:
    from imagefleet.settings import Settings

TRANSPARENT: RGBA = (0, 0, 0, 0)  # sharp's default rotate background


def rotate_any(frame: Frame, angle: float, rgba: RGBA) -> Frame:
    h, w = frame.shape[:2]
    nw, nh = rotated_size(w, h, angle)
    # cv2 angles are counter-clockwise; move the centre to the centre of the new canvas.
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -angle, 1.0)
    matrix[0, 2] += (nw - w) / 2
    matrix[1, 2] += (nh - h) / 2
    add_alpha = rgba[3] < 255  # a translucent fill needs alpha to survive
    fill = np.array(rgba, np.float64) * (257 if frame.dtype == np.uint16 else 1)
    if frame.shape[2] == 4 or add_alpha:  # interpolation runs premultiplied: so does the fill
        fill[:3] *= fill[3] / max_value(frame)

    def warp(plane: np.ndarray, channel: int) -> np.ndarray:
        return cv2.warpAffine(
            plane,
            matrix,
            (nw, nh),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=fill[channel],
        )

    return filter_planes(frame, warp, add_alpha)


def transform(frame: Frame, spec: RotateJob, angle: float, rgba: RGBA) -> Frame:
    if angle % 90 == 0:
        frame = np.rot90(frame, -int(angle // 90))  # np.rot90 turns counter-clockwise
    else:
        frame = rotate_any(frame, angle, rgba)
    if spec.flip:
        frame = frame[::-1]
    if spec.flop:
        frame = frame[:, ::-1]
    return np.ascontiguousarray(frame)


def rotate(inputs: list[Picture], spec: RotateJob, cfg: Settings) -> OpOutput:
    angle = spec.angle % 360  # Python's modulo is non-negative: -90 -> 270
    inputs[0].check_output(*rotated_size(inputs[0].width, inputs[0].height, angle))
    rgba = rgba_of(spec.background, TRANSPARENT)
    return OpOutput(inputs[0].map(lambda f: transform(f, spec, angle, rgba)))
