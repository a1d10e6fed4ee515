"""contact-sheet: every input's first frame fitted inside a cell, on a grid, as one PNG.

Cells are `cellWidth x cellHeight`, with `gap` pixels between cells and around the
border. Each image keeps its aspect ratio and is centred in its cell, composited "over"
the background, straight into the sheet (see worker.budget). The sheet is 8-bit: RGBA when
any input has alpha or the background is not opaque, else RGB. `columns` above the number
of images is reduced to it (empty columns would only widen the sheet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jobs.compose import ContactSheetJob
from jobs.spec import rgba_of
from worker.ops import OpOutput
from worker.ops.resize import resample
from worker.picture import Frame, Picture, max_value, strips

if TYPE_CHECKING:
    from imagefleet.settings import Settings

WHITE = (255, 255, 255, 255)


def fit(frame: Frame, cell_w: int, cell_h: int) -> Frame:
    """The frame fitted inside the cell, aspect kept (its own dtype and channels)."""
    h, w = frame.shape[:2]
    scale = min(cell_w / w, cell_h / h)
    size = (max(1, min(cell_w, round(w * scale))), max(1, min(cell_h, round(h * scale))))
    return resample(frame, *size) if size != (w, h) else frame  # premultiplied, area shrink


def place(sheet: np.ndarray, cell: Frame, y: int, x: int, background: np.ndarray) -> None:
    """`cell` composited "over" the background into the 8-bit sheet at (y, x), in float
    RGBA 0..1 (straight alpha) a strip of rows at a time. Cells never overlap, so what
    lies under one is always the background."""
    w = cell.shape[1]
    a_b = background[3:4]
    for rows in strips(cell):
        values = cell[rows].astype(np.float32) / max_value(cell)
        if values.shape[2] == 3:
            values = np.concatenate([values, np.ones_like(values[:, :, :1])], axis=2)
        a_o = values[:, :, 3:4]
        alpha = a_o + a_b * (1 - a_o)
        mixed = values[:, :, :3] * a_o + background[:3] * a_b * (1 - a_o)
        colour = np.divide(mixed, alpha, out=np.zeros_like(mixed), where=alpha > 0)
        result = np.concatenate([colour, alpha], axis=2)[:, :, : sheet.shape[2]]
        sheet[y + rows.start : y + rows.stop, x : x + w] = to_8bit(result)


def to_8bit(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def contact_sheet(inputs: list[Picture], spec: ContactSheetJob, cfg: Settings) -> OpOutput:
    n = len(inputs)
    cols, rows = spec.grid()
    cw, ch, gap = spec.cell_width, spec.cell_height, spec.gap
    width, height = spec.sheet_size()
    inputs[0].check_output(width, height, 1)
    background = np.array(rgba_of(spec.background, WHITE), np.float32) / 255.0
    rgba = background[3] < 1.0 or any(p.has_alpha for p in inputs)
    sheet = np.empty((height, width, 4 if rgba else 3), np.uint8)  # the only full-size array
    sheet[:] = to_8bit(background)[: sheet.shape[2]]
    for index, picture in enumerate(inputs):
        cell = fit(picture.first, cw, ch)
        h, w = cell.shape[:2]
        row, col = divmod(index, cols)
        y = gap + row * (ch + gap) + (ch - h) // 2
        x = gap + col * (cw + gap) + (cw - w) // 2
        place(sheet, cell, y, x, background)
    fields = {"cells": n, "columns": cols, "rows": rows}
    return OpOutput(Picture(frames=[sheet], format="png"), fields=fields)
