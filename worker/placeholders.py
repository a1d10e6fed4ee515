"""BlurHash and ThumbHash encoders: pure numpy ports of the reference algorithms.

BlurHash follows woltapp/blurhash's C encoder (C/encode.c, C/common.h): a DCT of linear-light
RGB with basis cos(pi * i * x / width) - no half-pixel offset, as the reference has it - a
DC term stored as 8-bit sRGB and AC terms quantised to 19 levels against their maximum,
base-83 encoded. ThumbHash follows evanw/thumbhash's JavaScript encoder (js/thumbhash.js):
the image composited over its own average colour, converted to L, P, Q (and A) planes,
DCT'd over triangles of coefficients and packed into nibbles; its inputs are at most
100x100. Both round as their references do (floor(x + 0.5), never Python's half-to-even),
in float64 where the references use float32 (C, Rust) or float64 (JavaScript).
"""

from __future__ import annotations

import math

import numpy as np

THUMBHASH_MAX_SIDE = 100  # the reference refuses larger inputs ("slow with no benefit")
_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _js_round(value: float) -> int:
    """Math.round: halves up (Python's round() sends halves to even)."""
    return math.floor(value + 0.5)


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - 1 - i)) % 83] for i in range(length))


def _srgb_to_linear() -> np.ndarray:
    v = np.arange(256, dtype=np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_LINEAR = _srgb_to_linear()


def _linear_to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _quantise_ac(value: np.ndarray, maximum: float) -> np.ndarray:
    scaled = value / maximum
    root = np.sign(scaled) * np.sqrt(np.abs(scaled))  # signPow(v, 0.5)
    return np.clip(np.floor(root * 9 + 9.5), 0, 18).astype(np.int64)


def blurhash(rgb: np.ndarray, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of an 8-bit RGB image (height x width x 3), 1..9 components a side."""
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("BlurHash takes 1 to 9 components a side")
    height, width = rgb.shape[:2]
    linear = _LINEAR[rgb[:, :, :3]]
    cos_x = np.cos(np.pi * np.outer(np.arange(x_components), np.arange(width)) / width)
    cos_y = np.cos(np.pi * np.outer(np.arange(y_components), np.arange(height)) / height)
    # factors[j, i] = sum over pixels of cos_y[j, y] * cos_x[i, x] * linear[y, x]
    factors = np.einsum("jy,ix,yxc->jic", cos_y, cos_x, linear, optimize=True) / (width * height)
    factors = factors.reshape(-1, 3)
    factors[1:] *= 2  # the AC terms' normalisation
    dc, ac = factors[0], factors[1:]
    size_flag = (x_components - 1) + (y_components - 1) * 9
    if len(ac):
        quantised_max = int(np.clip(math.floor(float(np.abs(ac).max()) * 166 - 0.5), 0, 82))
        maximum = (quantised_max + 1) / 166
    else:
        quantised_max, maximum = 0, 1.0
    r, g, b = (_linear_to_srgb(float(v)) for v in dc)
    parts = [_base83(size_flag, 1), _base83(quantised_max, 1), _base83((r << 16) | (g << 8) | b, 4)]
    for qr, qg, qb in _quantise_ac(ac, maximum):
        parts.append(_base83(int(qr) * 19 * 19 + int(qg) * 19 + int(qb), 2))
    return "".join(parts)


def _dct_triangle(channel: np.ndarray, nx: int, ny: int) -> tuple[float, np.ndarray, float]:
    """ThumbHash's encodeChannel: the DC, the AC terms (cx * ny < nx * (ny - cy), row by
    row) normalised to 0..1 around 0.5, and their scale (the largest magnitude)."""
    height, width = channel.shape
    terms = [(cx, cy) for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy)]
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    fx = np.cos(np.pi / width * np.outer([cx for cx, _ in terms], xs))
    fy = np.cos(np.pi / height * np.outer([cy for _, cy in terms], ys))
    values = np.einsum("ty,yx,tx->t", fy, channel, fx, optimize=True) / (width * height)
    dc, ac = float(values[0]), values[1:]
    scale = float(np.abs(ac).max()) if len(ac) else 0.0
    if scale:
        ac = 0.5 + 0.5 / scale * ac
    return dc, ac, scale


def thumbhash(rgba: np.ndarray) -> bytes:
    """The ThumbHash of an 8-bit RGBA image (straight alpha), at most 100x100."""
    height, width = rgba.shape[:2]
    if width > THUMBHASH_MAX_SIDE or height > THUMBHASH_MAX_SIDE:
        raise ValueError(f"{width}x{height} doesn't fit in 100x100")
    alpha = rgba[:, :, 3].astype(np.float64) / 255
    colour = rgba[:, :, :3].astype(np.float64) / 255 * alpha[:, :, None]  # premultiplied
    total_alpha = float(alpha.sum())
    average = colour.sum(axis=(0, 1)) / total_alpha if total_alpha else np.zeros(3)
    has_alpha = total_alpha < width * height
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha takes bytes
    lx = max(1, _js_round(l_limit * width / max(width, height)))
    ly = max(1, _js_round(l_limit * height / max(width, height)))
    # Composite over the average colour, then to luminance and two chroma planes.
    over = average * (1 - alpha[:, :, None]) + colour
    r, g, b = over[:, :, 0], over[:, :, 1], over[:, :, 2]
    l_dc, l_ac, l_scale = _dct_triangle((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _dct_triangle((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _dct_triangle(r - g, 3, 3)
    landscape = width > height
    header24 = (
        _js_round(63 * l_dc)
        | _js_round(31.5 + 31.5 * p_dc) << 6
        | _js_round(31.5 + 31.5 * q_dc) << 12
        | _js_round(31 * l_scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (
        (ly if landscape else lx)
        | _js_round(63 * p_scale) << 3
        | _js_round(63 * q_scale) << 9
        | int(landscape) << 15
    )
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _dct_triangle(alpha, 5, 5)
        out.append(_js_round(15 * a_dc) | _js_round(15 * a_scale) << 4)
        terms.append(a_ac)
    nibbles = [_js_round(15 * float(f)) for f in np.concatenate(terms)]
    nibbles += [0] * (len(nibbles) % 2)
    out += [low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)]
    return bytes(out)
