"""adjust: sharp's modulate (brightness, saturation, hue, lightness), then tint, then negate.

Modulate works in LCh over CIE Lab (D65): L *= brightness, L += lightness,
C *= saturation, h += hue degrees. Tint keeps each pixel's L* and takes the tint colour's
a*, b* (sharp before 0.33; newer sharp also fades the tint towards black and white).
Negate inverts the colour channels only. Alpha is never changed.

sRGB <-> Lab is computed here with the exact formulas rather than cv2.cvtColor: OpenCV's
float path uses a coarse gamma table (round trips drift by ~1/255, ruining 16-bit). The
float32 work runs a strip of rows at a time into one output frame (see worker.budget).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from jobs.tone import AdjustJob
from worker.ops import OpOutput
from worker.picture import Frame, Picture, max_value, strips, to_dtype

if TYPE_CHECKING:
    from imagefleet.settings import Settings

_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
# Normalise by D65 white = M @ (1, 1, 1), so greys map exactly to a* = b* = 0 and back.
_TO_XYZN = (_SRGB_TO_XYZ / _SRGB_TO_XYZ.sum(axis=1, keepdims=True)).T.astype(np.float32)
_FROM_XYZN = np.linalg.inv(_TO_XYZN.astype(np.float64)).astype(np.float32)
_D = 6 / 29


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 (float32, ... x 3) to CIE Lab (L* 0..100)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear.astype(np.float32) @ _TO_XYZN
    f = np.where(xyz > _D**3, np.cbrt(xyz), xyz / (3 * _D * _D) + 4 / 29)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def _rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab to sRGB, clipped to 0..1: the gamut clip sharp gets when a step ends in sRGB."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > _D, f**3, 3 * _D * _D * (f - 4 / 29))
    linear = np.clip(xyz.astype(np.float32) @ _FROM_XYZN, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _modulate(rgb: np.ndarray, spec: AdjustJob) -> np.ndarray:
    lab = _lab(rgb)
    lab[:, :, 0] = lab[:, :, 0] * (spec.brightness if spec.brightness is not None else 1.0)
    lab[:, :, 0] += spec.lightness or 0.0
    # Scaling chroma and rotating hue is one linear map of (a, b): s * rotation(h).
    s = spec.saturation if spec.saturation is not None else 1.0
    h = math.radians(spec.hue or 0.0)
    cos, sin = s * math.cos(h), s * math.sin(h)
    a, b = lab[:, :, 1].copy(), lab[:, :, 2].copy()
    lab[:, :, 1] = a * cos - b * sin
    lab[:, :, 2] = a * sin + b * cos
    return _rgb(lab)


def _tint(rgb: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """Each pixel's L* with the a*, b* of `tint` (a Lab colour)."""
    lab = _lab(rgb)
    lab[:, :, 1:] = tint[1:]
    return _rgb(lab)


def adjust_frame(frame: Frame, spec: AdjustJob) -> Frame:
    top = max_value(frame)
    out = np.empty(frame.shape, frame.dtype)
    if frame.shape[2] == 4:
        out[:, :, 3] = frame[:, :, 3]
    modulate = any(
        v is not None for v in (spec.brightness, spec.saturation, spec.hue, spec.lightness)
    )
    tint = None
    if spec.tint is not None:
        colour = (spec.tint.r, spec.tint.g, spec.tint.b)
        tint = _lab(np.array([[colour]], np.float32) / 255.0)[0, 0]
    if not modulate and tint is None:  # negate only
        out[:, :, :3] = frame[:, :, :3]
    else:
        for rows in strips(frame):
            rgb = frame[rows, :, :3].astype(np.float32) / top
            if modulate:
                rgb = _modulate(rgb, spec)
            if tint is not None:
                rgb = _tint(rgb, tint)
            out[rows, :, :3] = to_dtype(rgb * top, frame.dtype)
    if spec.negate:
        np.subtract(top, out[:, :, :3], out=out[:, :, :3])
    return out


def adjust(inputs: list[Picture], spec: AdjustJob, cfg: Settings) -> OpOutput:
    return OpOutput(inputs[0].map(lambda frame: adjust_frame(frame, spec)))
