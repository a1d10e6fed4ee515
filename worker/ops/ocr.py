"""ocr: Tesseract (LSTM) on every page of the input. Facts only, no output image.

Each page becomes 8-bit grey (alpha flattened on white), then goes through the
preprocessing steps of `Preprocess`, each kept because it lowered the character error
rate on the evaluation set (tests/ocr_eval.py) without raising it elsewhere, then through
the process's cached engine for the job's language (worker/tesseract.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from imagefleet.settings import Settings
from jobs.errors import ErrorCode, FleetError
from jobs.ocr import OcrJob
from worker import tesseract
from worker.ocr_prep import (
    DEFAULT,
    ORIENT_BELOW_CONF,
    SINGLE_LINE_PSMS,
    Preprocess,
    deskewed,
    map_tsv,
    orient,
    prepare,
    rot90_map,
)
from worker.ops import OpOutput
from worker.picture import Frame, Picture


def _recognise(
    grey: np.ndarray, back: np.ndarray, frame: Frame, spec: OcrJob, page: int
) -> dict[str, Any]:
    result = tesseract.recognise(Image.fromarray(grey), spec.lang, spec.psm, spec.tsv, page)
    if spec.tsv:
        header, rows = result["tsv"].split("\n", 1)
        result["tsv"] = header + "\n" + map_tsv(rows, back, frame.shape[1], frame.shape[0])
    return result


def read_page(
    frame: Frame, spec: OcrJob, page: int = 0, steps: Preprocess = DEFAULT
) -> dict[str, Any]:
    """One page's text, confidence, words (and TSV, boxes in the frame's coordinates).

    Orientation is checked only when the upright reading is poor: Tesseract reads pages
    turned 90 degrees clockwise by itself (confidence 93-95 on the eval set), pages turned
    180 or 270 read at confidence <= 54, and OSD costs as much as the OCR of a small page
    (~370 ms on a 1700x2200 page). A turned reading replaces the first only if Tesseract
    is more confident in it."""
    grey, back = prepare(frame, spec.psm, steps)
    result = {"page": page, **_recognise(grey, back, frame, spec, page), "rotation": 0}
    if (
        steps.orient
        and spec.psm not in SINGLE_LINE_PSMS
        and result["confidence"] < ORIENT_BELOW_CONF
    ):
        turned, degrees = orient(grey)
        if degrees:
            h, w = grey.shape
            turned_back = back @ np.linalg.inv(rot90_map(degrees // 90, w, h))
            if steps.deskew:
                turned, turned_back = deskewed(turned, turned_back)
            second = _recognise(turned, turned_back, frame, spec, page)
            if second["confidence"] > result["confidence"]:
                result = {"page": page, **second, "rotation": degrees}
    return result


def read_picture(picture: Picture, spec: OcrJob, steps: Preprocess = DEFAULT) -> dict[str, Any]:
    pages = [read_page(frame, spec, index, steps) for index, frame in enumerate(picture.frames)]
    fields: dict[str, Any] = {
        "text": "\f".join(p["text"] for p in pages),
        "confidence": round(sum(p["confidence"] for p in pages) / len(pages), 1),
        "words": sum(p["words"] for p in pages),
        "pages": pages,
    }
    if spec.tsv:  # one header, then every page's rows (page_num tells them apart)
        fields["tsv"] = (
            tesseract.TSV_HEADER + "\n" + "".join(p["tsv"].split("\n", 1)[1] for p in pages)
        )
    return fields


def ocr(inputs: list[Picture], spec: OcrJob, cfg: Settings) -> OpOutput:
    pages, limit = len(inputs[0].frames), cfg.ocr_max_pages
    if pages > limit:  # ~1 s a page: a long TIFF would outlive the time limit
        raise FleetError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the input has {pages} pages; OCR reads at most {limit} per job",
        )
    return OpOutput(None, read_picture(inputs[0], spec))
