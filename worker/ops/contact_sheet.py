"""contact-sheet: every input's first frame fitted inside a cell, on a grid, as one PNG.

Cells are `cellWidth x cellHeight`, with `gap` pixels between cells and around the
border. Each image keeps its aspect ratio and is centred in its cell, composited "over"
the background. The sheet is 8-bit: RGBA when any input has alpha or the background is
not opaque, else RGB. `columns` above the number of images is reduced to it (empty
columns would only widen the sheet).
"""

from __future__ import annotations

import math

import numpy as np

from jobs.compose import ContactSheetJob
from jobs.spec import rgba_of
from worker.ops import OpOutput
from worker.ops.resize import resample
from worker.picture import Frame, Picture, max_value

WHITE = (255, 255, 255, 255)


def grid(n: int, columns: int | None) -> tuple[int, int]:
    """(columns, rows): near-square by default."""
    cols = min(columns or math.ceil(math.sqrt(n)), n)
    return cols, math.ceil(n / cols)


def fit(frame: Frame, cell_w: int, cell_h: int) -> np.ndarray:
    """Float RGBA (0..1, straight alpha) fitted inside the cell, aspect kept."""
    h, w = frame.shape[:2]
    scale = min(cell_w / w, cell_h / h)
    size = (max(1, min(cell_w, round(w * scale))), max(1, min(cell_h, round(h * scale))))
    if size != (w, h):
        frame = resample(frame, *size)  # premultiplied, area when shrinking
    values = frame.astype(np.float32) / max_value(frame)
    if values.shape[2] == 3:
        values = np.concatenate([values, np.ones_like(values[:, :, :1])], axis=2)
    return values


def contact_sheet(inputs: list[Picture], spec: ContactSheetJob) -> OpOutput:
    n = len(inputs)
    cols, rows = grid(n, spec.columns)
    cw, ch, gap = spec.cell_width, spec.cell_height, spec.gap
    inputs[0].check_output(cols * cw + (cols + 1) * gap, rows * ch + (rows + 1) * gap, 1)
    background = np.array(rgba_of(spec.background, WHITE), np.float32) / 255.0
    rgba = background[3] < 1.0 or any(p.has_alpha for p in inputs)
    sheet = np.empty((rows * ch + (rows + 1) * gap, cols * cw + (cols + 1) * gap, 4),
                     np.float32)
    sheet[:] = background
    for index, picture in enumerate(inputs):
        cell = fit(picture.first, cw, ch)
        h, w = cell.shape[:2]
        row, col = divmod(index, cols)
        y = gap + row * (ch + gap) + (ch - h) // 2
        x = gap + col * (cw + gap) + (cw - w) // 2
        under = sheet[y:y + h, x:x + w]
        a_o, a_b = cell[:, :, 3:4], under[:, :, 3:4]
        alpha = a_o + a_b * (1 - a_o)
        mixed = cell[:, :, :3] * a_o + under[:, :, :3] * a_b * (1 - a_o)
        colour = np.divide(mixed, alpha, out=np.zeros_like(mixed), where=alpha > 0)
        sheet[y:y + h, x:x + w] = np.concatenate([colour, alpha], axis=2)
    out = np.clip(np.rint(sheet * 255.0), 0, 255).astype(np.uint8)
    if not rgba:
        out = np.ascontiguousarray(out[:, :, :3])
    fields = {"cells": n, "columns": cols, "rows": rows}
    return OpOutput(Picture(frames=[out], format="png"), fields=fields)
