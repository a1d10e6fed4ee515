"""`quality: "auto"` and `format: "auto"`: the smallest file whose SSIM meets a target.

The metric: mean SSIM (Wang et al. 2004: Gaussian window 11 x 11, sigma 1.5, K1 0.01, K2
0.03, 'valid' windows only: a 5-pixel border is left out) of the luma, BT.601 Y of the 8-bit
sRGB pixels, of the picture as encoded against the picture handed to the encoder; alpha is
flattened on the output's background first. Luma only: chroma subsampling goes unmeasured.

The search: over the encoder's quality (20..100; interpolated, 3-5 encodes) for the lowest
quality that meets the target, on a proxy: the picture itself up to PROXY_SIDE^2 pixels,
else a mosaic of TILES x TILES full-resolution tiles cut on a regular grid. A tile keeps the
pixel scale the artefacts live at (a downscaled proxy would hide them and pick too low a
quality) and SSIM is a mean of local windows, so a sample of the picture's windows predicts
it. The full-size encode at the quality found is then measured (in bands of rows, luma
included, so the measure holds only the decoded encode besides bands of floats) and, if it
misses the target, raised at most FULL_ENCODES - 1 times, halfway towards HIGH then HIGH: a
picture whose sampled tiles say nothing of the rest (flat tiles in a 1-px checkerboard) costs
at most FULL_ENCODES full-size encodes, not one per step from the proxy's quality to 100.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from worker.picture import Frame

LOW, HIGH = 20, 100  # the qualities searched
PROXY_SIDE = 768  # pictures up to 768 x 768 (0.59 MP) are searched whole
# Else 3 x 3 tiles of 256 px (a 768 x 768 mosaic; corners at multiples of 16). Measured on
# the corpus's 6 MP photo at SSIM 0.98: the quality found within 2 of the whole picture's
# for AVIF, WebP, JPEG XL and JPEG, the bytes predicted within 6% (4 x 192 and 6 x 128 were
# as close; 2 x 384 missed the bytes by 7-16%).
TILES, TILE = 3, 256
BAND = 512  # rows of SSIM computed at once: float32 temporaries of BAND x width
COUNT_PIXELS = 1 << 20  # pixels whose colours are counted at once (uint32 temporaries)
FULL_ENCODES = 3  # full-size encodes at most: the quality found, halfway to HIGH, HIGH
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_RADIUS = 5  # of the 11 x 11 window
_BT601 = np.array([0.299, 0.587, 0.114], np.float32)

Encoder = Callable[[Frame, int], bytes]  # (frame, quality) -> encoded bytes
Decoder = Callable[[bytes], Frame]


def luma(frame: Frame, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """BT.601 Y (0..255, float32) of an 8- or 16-bit RGB(A) frame; alpha over `background`."""
    pixels = frame.astype(np.float32)
    if frame.dtype == np.uint16:
        pixels /= 257.0
    if frame.ndim == 2:
        return pixels
    y = pixels[:, :, :3] @ _BT601
    if frame.shape[2] == 4:
        alpha = pixels[:, :, 3] / 255.0
        y = y * alpha + float(np.dot(background, _BT601)) * (1 - alpha)
    return np.asarray(y, np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two luma planes of one size (0..255), over the windows wholly inside."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM of {a.shape} against {b.shape}")
    height, width = a.shape
    if min(height, width) <= 2 * _RADIUS:  # no whole window: the plain formula on the whole
        return _ssim_map(a.astype(np.float64), b.astype(np.float64), 0).mean().item()
    total, count = 0.0, 0
    for top in range(_RADIUS, height - _RADIUS, BAND):  # rows whose windows are inside
        bottom = min(top + BAND, height - _RADIUS)
        rows = slice(top - _RADIUS, bottom + _RADIUS)
        values = _ssim_map(a[rows].astype(np.float32), b[rows].astype(np.float32), _RADIUS)
        total += float(values.sum(dtype=np.float64))
        count += values.size
    return total / count


Rows = Callable[[int, int], Frame]  # (top, bottom) -> those rows of a picture


def ssim_frames(
    picture: Frame, encoded: Rows, background: tuple[int, int, int] = (255, 255, 255)
) -> float:
    """`ssim` of the picture's luma against that of `encoded` (the same size, read a band of
    rows at a time), each band's luma taken as it is measured: no whole-picture float plane
    (8 bytes a pixel for the two) nor a copy of the encode's pixels is ever made."""
    height = picture.shape[0]
    if height <= 2 * _RADIUS + BAND:
        return ssim(luma(picture, background), luma(encoded(0, height), background))
    total, count = 0.0, 0
    for top in range(_RADIUS, height - _RADIUS, BAND):  # the same windows as `ssim`
        bottom = min(top + BAND, height - _RADIUS)
        first, last = top - _RADIUS, bottom + _RADIUS
        a = luma(picture[first:last], background)
        b = luma(encoded(first, last), background)
        values = _ssim_map(a, b, _RADIUS)
        total += float(values.sum(dtype=np.float64))
        count += values.size
    return total / count


def raised(q: int) -> list[int]:
    """The qualities a full-size encode that missed the target at `q` tries next."""
    return sorted({min(HIGH, (q + HIGH + 1) // 2), HIGH} - {q})[: FULL_ENCODES - 1]


def _ssim_map(x: np.ndarray, y: np.ndarray, crop: int) -> np.ndarray:
    def blur(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    values = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return values[crop : values.shape[0] - crop, crop : values.shape[1] - crop] if crop else values


def proxy(frame: Frame) -> Frame:
    """What the search encodes: the frame, or a mosaic of full-resolution tiles from a
    regular grid over it (corners at multiples of 16: JPEG's and AV1's block grid)."""
    height, width = frame.shape[:2]
    if height * width <= PROXY_SIDE * PROXY_SIDE or min(height, width) < TILES * TILE:
        return frame

    def starts(side: int) -> list[int]:
        step = (side - TILE) / (TILES - 1)
        return [int(i * step) // 16 * 16 for i in range(TILES)]

    rows = [
        np.concatenate([frame[y : y + TILE, x : x + TILE] for x in starts(width)], axis=1)
        for y in starts(height)
    ]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


@dataclass(frozen=True)
class Found:
    quality: int
    size: int  # bytes of the proxy at that quality
    ssim: float  # of the proxy at that quality
    payload: bytes  # the proxy's encoding at that quality


def search(
    sample: Frame, target: float, encode: Encoder, decode: Decoder, background: tuple[int, int, int]
) -> Found:
    """The lowest quality whose encoding of `sample` meets `target` (HIGH if none does),
    SSIM taken to rise with quality: 3-5 encodes for targets 0.95-0.995, where plain
    halving of 20..100 takes 7."""
    reference = luma(sample, background)
    tried: dict[int, Found] = {}

    def measure(quality: int) -> Found:
        payload = encode(sample, quality)
        score = ssim(reference, luma(decode(payload), background))
        tried[quality] = Found(quality, len(payload), score, payload)
        return tried[quality]

    low, high = LOW, HIGH  # the answer is in low..high; `high` meets it or is HIGH
    guesses: list[int] = []  # the interpolated probes, in order
    while low < high:
        quality = _next_probe(low, high, tried, target, guesses)
        met = measure(quality).ssim >= target
        high, low = (quality, low) if met else (high, quality + 1)
    return tried.get(low) or measure(low)


FIRST, THEN = 70, (50, 88)  # the first probe; the second if it met the target, or not


def _next_probe(
    low: int, high: int, tried: dict[int, Found], target: float, guesses: list[int]
) -> int:
    """The first probes, then a guess interpolated between the measured qualities either
    side of the answer, then the guess's neighbour (which ends the search when the guess
    was right); halving where nothing is measured on one side."""
    if not tried:
        return FIRST
    if len(tried) == 1:
        return min(high - 1, max(low, THEN[0] if high == FIRST else THEN[1]))
    last = list(tried)[-1]
    if guesses and guesses[-1] == last:  # the guess's neighbour, inside the range
        return low if last == low - 1 else high - 1
    below, above = tried.get(low - 1), tried.get(high)
    if below is not None and above is not None and 1 > above.ssim > below.ssim:
        # 1 - SSIM falls about exponentially with quality: interpolate its logarithm.
        loss = [math.log(1 - min(f.ssim, 1 - 1e-9)) for f in (below, above)]
        share = (math.log(1 - min(target, 1 - 1e-9)) - loss[0]) / (loss[1] - loss[0])
        guess = below.quality + round(share * (above.quality - below.quality))
        guesses.append(min(high - 1, max(low, guess)))
        return guesses[-1]
    return (low + high) // 2


def few_colours(frame: Frame, limit: int = 256) -> np.ndarray | None:
    """The frame's distinct RGBA colours if there are at most `limit` (a graphic), else None.
    A 64k-pixel sample is counted first: a photo stops there."""
    if frame.dtype != np.uint8:
        return None
    flat = frame.reshape(-1, frame.shape[2])
    step = max(1, flat.shape[0] // 65536)
    if len(np.unique(_packed(flat[::step]))) > limit:
        return None
    colours = np.empty(0, np.uint32)
    for start in range(0, flat.shape[0], COUNT_PIXELS):  # a strip at a time: bounded memory
        colours = np.union1d(colours, _packed(flat[start : start + COUNT_PIXELS]))
        if len(colours) > limit:
            return None
    return colours


def _packed(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) rows as one uint32 each (alpha 255 when absent), for counting colours."""
    rgba = pixels.astype(np.uint32)
    alpha = rgba[:, 3] if pixels.shape[1] == 4 else np.uint32(255)
    return (rgba[:, 0] << 24) | (rgba[:, 1] << 16) | (rgba[:, 2] << 8) | alpha
