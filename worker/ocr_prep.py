"""OCR preprocessing: grey, denoise, flatten, upscale, orient and deskew a page, each step
kept because it lowered the character error rate on the evaluation set (tests/ocr_eval.py)
without raising it elsewhere; plus the maps that carry word boxes back to the input."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from worker import tesseract
from worker.picture import Frame

# Modes that read one line, word or character: a page-level orientation/skew is moot.
SINGLE_LINE_PSMS = frozenset({7, 8, 9, 10, 13})


@dataclass(frozen=True)
class Preprocess:
    denoise: bool = True  # Gaussian blur (sigma 1) when the page's noise sigma >= NOISY
    flatten: bool = True  # divide by the estimated paper (shadows, uneven light, low contrast)
    upscale: bool = True  # small text (median glyph < MIN_TEXT_PX) scaled up, INTER_CUBIC
    orient: bool = True  # poor reading: Tesseract OSD, turn by 90/180/270, read again
    deskew: bool = True  # projection-profile skew within +-10 degrees
    binarise: bool = False  # Otsu before Tesseract: measured no gain anywhere, off


DEFAULT = Preprocess()
NOISY = 5.0  # noise sigma (grey levels) from which a light blur helps
MIN_TEXT_PX = 11  # median glyph (connected component) height below which text is upscaled
TARGET_TEXT_PX = 20
MAX_SCALE = 4.0
MAX_SCALED_PIXELS = 40_000_000
MIN_ORIENT_CONF = 1.0  # OSD confidence needed before turning a page
ORIENT_BELOW_CONF = 80  # mean word confidence under which orientation is checked
MAX_SKEW = 10.0
MIN_SKEW = 0.3  # degrees: smaller skews are left alone


def to_grey(frame: Frame) -> np.ndarray:
    """8-bit single-channel luminance; alpha flattened on white."""
    if frame.dtype == np.uint8 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    values = frame.astype(np.float32)
    if frame.dtype == np.uint16:
        values /= 257.0
    if frame.shape[2] == 4:
        alpha = values[:, :, 3:4] / 255.0
        values = values[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    rgb = np.clip(np.rint(values[:, :, :3]), 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def noise_sigma(grey: np.ndarray) -> float:
    """Robust noise estimate (Immerkaer's kernel, median absolute response, from a
    histogram in steps of 2): text edges do not count, so small clean text reads 0 and
    sigma-12 sensor noise reads ~12."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    halved = cv2.convertScaleAbs(cv2.filter2D(grey, cv2.CV_16S, kernel), alpha=0.5)
    counts = np.cumsum(cv2.calcHist([halved], [0], None, [256], [0, 256]).ravel())
    median = 2.0 * float(np.searchsorted(counts, counts[-1] / 2))
    return 1.4826 * median / 6.0


def denoise(grey: np.ndarray) -> np.ndarray:
    if noise_sigma(grey) < NOISY:
        return grey
    return cv2.GaussianBlur(grey, (0, 0), 1.0)


def flatten(grey: np.ndarray) -> np.ndarray:
    """Divide by the paper: a max filter wider than strokes (11 px at a third of the
    resolution) then a median. A uniformly lit white page is returned unchanged."""
    h, w = grey.shape
    step = 3 if min(h, w) >= 150 else 1
    small = (
        cv2.resize(grey, (w // step, h // step), interpolation=cv2.INTER_AREA) if step > 1 else grey
    )
    paper = cv2.medianBlur(cv2.dilate(small, np.ones((11, 11), np.uint8)), 11)
    if int(paper.max()) - int(paper.min()) < 8 and paper.min() > 200:
        return grey
    if step > 1:
        paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    out = grey.astype(np.float32) * 255.0 / np.maximum(paper, 1).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def ink_mask(grey: np.ndarray) -> np.ndarray:
    """Otsu foreground (text) as 255, whichever polarity the page has."""
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if np.count_nonzero(mask) > mask.size // 2:  # light text on a dark page
        mask = 255 - mask
    return mask


def text_height(grey: np.ndarray) -> float | None:
    """Median height of the glyph-sized connected components, None without any."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink_mask(grey), connectivity=8)
    if count <= 1:
        return None
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    keep = (stats[1:, cv2.CC_STAT_AREA] >= 3) & (heights >= 2) & (heights <= grey.shape[0] // 2)
    return float(np.median(heights[keep])) if np.any(keep) else None


def upscale(grey: np.ndarray) -> np.ndarray:
    height = text_height(grey)
    if height is None or height >= MIN_TEXT_PX:
        return grey
    scale = min(MAX_SCALE, TARGET_TEXT_PX / height, (MAX_SCALED_PIXELS / grey.size) ** 0.5)
    if scale <= 1.05:
        return grey
    return cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def orient(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """The page turned upright per Tesseract OSD, and the clockwise degrees it was at."""
    found = tesseract.detect_orientation(Image.fromarray(grey))
    if not found or found["orient_conf"] < MIN_ORIENT_CONF or found["orient_deg"] % 360 == 0:
        return grey, 0
    degrees = int(found["orient_deg"]) % 360
    # np.rot90 turns counter-clockwise: undo `degrees` clockwise.
    return np.ascontiguousarray(np.rot90(grey, degrees // 90)), degrees


def skew_angle(grey: np.ndarray) -> float:
    """The rotation (degrees, counter-clockwise positive as in cv2) that makes text rows
    horizontal: the angle whose row profile of the ink is sharpest, searched coarse then
    fine over +-MAX_SKEW on the ink pixels (of the page shrunk to <= 1000 px)."""
    mask = ink_mask(grey)
    scale = min(1.0, 1000 / max(mask.shape))
    if scale < 1.0:
        mask = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(mask)
    if len(ys) < 50:
        return 0.0
    weights = mask[ys, xs].astype(np.float64)
    xs = xs - mask.shape[1] / 2
    ys = ys - mask.shape[0] / 2

    def sharpness(angle: float) -> float:
        turn = np.deg2rad(angle)
        rows = ys * np.cos(turn) - xs * np.sin(turn)
        profile = np.bincount((rows - rows.min()).astype(np.int64), weights)
        return float(np.sum(np.diff(profile) ** 2))

    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 0.5)
    best = float(coarse[int(np.argmax([sharpness(a) for a in coarse]))])
    fine = np.arange(best - 0.4, best + 0.41, 0.1)
    return float(fine[int(np.argmax([sharpness(a) for a in fine]))])


def deskew(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The page with its skew removed (on a canvas grown to keep the corners), and the
    2x3 affine map used (None when the page was left alone)."""
    angle = skew_angle(grey)
    if abs(angle) < MIN_SKEW:
        return grey, None
    h, w = grey.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    matrix[0, 2] += (nw - w) / 2
    matrix[1, 2] += (nh - h) / 2
    paper = int(np.median(grey[ink_mask(grey) == 0]))  # fill with the paper's colour
    return cv2.warpAffine(
        grey,
        matrix,
        (nw, nh),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=paper,
    ), matrix


def binarise(grey: np.ndarray) -> np.ndarray:
    return cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


def rot90_map(k: int, w: int, h: int) -> np.ndarray:
    """The pixel-coordinate map of np.rot90(image, k) (counter-clockwise quarter turns)."""
    forward = np.eye(3)
    for _ in range(k % 4):  # one turn: (x, y) -> (y, w - x), and the sides swap
        forward = np.array([[0, 1, 0], [-1, 0, w], [0, 0, 1]], float) @ forward
        w, h = h, w
    return forward


def prepare(frame: Frame, psm: int, steps: Preprocess = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """The page ready for Tesseract, and the 3x3 map from its pixel coordinates back to
    the frame's (upscaling and deskew change geometry)."""
    grey = to_grey(frame)
    back = np.eye(3)
    if steps.denoise:
        grey = denoise(grey)
    if steps.flatten:
        grey = flatten(grey)
    if steps.upscale:
        h, w = grey.shape
        grey = upscale(grey)
        if grey.shape[1] != w:
            back = back @ np.linalg.inv(np.diag([grey.shape[1] / w, grey.shape[0] / h, 1.0]))
    if steps.deskew and psm not in SINGLE_LINE_PSMS:
        grey, back = deskewed(grey, back)
    if steps.binarise:
        grey = binarise(grey)
    return grey, back


def deskewed(grey: np.ndarray, back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grey, matrix = deskew(grey)
    if matrix is not None:
        back = back @ np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    return grey, back


def map_tsv(rows: str, back: np.ndarray, width: int, height: int) -> str:
    """TSV rows with every box mapped back to the input frame (the bounding box of its
    mapped corners, clipped to the frame)."""
    if np.allclose(back, np.eye(3)):
        return rows
    out = []
    for row in rows.splitlines():
        cells = row.split("\t")
        if len(cells) != 12:
            out.append(row)
            continue
        left, top, w, h = (int(c) for c in cells[6:10])
        corners = (
            np.array(
                [[left, top, 1], [left + w, top, 1], [left, top + h, 1], [left + w, top + h, 1]],
                float,
            )
            @ back.T
        )
        x0, y0 = np.clip(np.floor(corners[:, :2].min(axis=0)), 0, [width, height])
        x1, y1 = np.clip(np.ceil(corners[:, :2].max(axis=0)), 0, [width, height])
        cells[6:10] = [str(int(v)) for v in (x0, y0, x1 - x0, y1 - y0)]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n" if out else ""
