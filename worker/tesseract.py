"""Initialised Tesseract engines, kept per worker process (one per language string).

tesserocr's wheel bundles libtesseract 5.5 but no language data: engines read
`settings().tessdata_dir`. Initialising one costs ~50-250 ms, so the worker keeps the
last few (LRU, `FLEET_OCR_API_CACHE`, default 4) and ends the least recently used one.
A PyTessBaseAPI is not thread-safe: every use holds the module lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from PIL import Image

from imagefleet.settings import settings
from jobs.errors import ErrorCode, FleetError

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # before libtesseract loads (DESIGN notes)

import tesserocr  # noqa: E402

TSV_HEADER = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
)
log = logging.getLogger("imagefleet.worker")

_lock = threading.RLock()
_apis: OrderedDict[str, tesserocr.PyTessBaseAPI] = OrderedDict()
_osd: list[tesserocr.PyTessBaseAPI] = []  # the one orientation engine, made on first use


def cache_size() -> int:
    return settings().ocr_api_cache


def _unsupported(lang: str) -> FleetError:
    return FleetError(
        ErrorCode.UNSUPPORTED_LANG,
        f"Tesseract could not load language {lang!r} (no traineddata in {settings().tessdata_dir})",
    )


def _init(lang: str, oem: int) -> tesserocr.PyTessBaseAPI:
    try:
        api = tesserocr.PyTessBaseAPI(path=settings().tessdata_dir, lang=lang, oem=oem)
    except RuntimeError:  # the first language is missing: Tesseract refuses to start
        raise _unsupported(lang) from None
    missing = set(lang.split("+")) - set(api.GetLoadedLanguages())
    if missing:  # a later one is missing: Tesseract carries on without it; we do not
        api.End()
        raise _unsupported("+".join(sorted(missing)))
    return api


def api_for(lang: str) -> tesserocr.PyTessBaseAPI:
    """The cached LSTM engine for `lang` ("eng", "eng+deu"), creating it (and evicting the
    least recently used one past the bound) as needed. Call with the lock held if you use
    the engine; `recognise` does."""
    with _lock:
        api = _apis.get(lang)
        if api is not None:
            _apis.move_to_end(lang)
            return api
        api = _init(lang, tesserocr.OEM.LSTM_ONLY)
        _apis[lang] = api
        while len(_apis) > cache_size():
            _, old = _apis.popitem(last=False)
            old.End()
        return api


def cached_langs() -> list[str]:
    """Languages with a live engine, least recently used first."""
    with _lock:
        return list(_apis)


def clear_cache() -> None:
    """End every engine (tests, or a worker shutting down)."""
    with _lock:
        while _apis:
            _apis.popitem(last=False)[1].End()
        while _osd:
            _osd.pop().End()


def _page_result(api: tesserocr.PyTessBaseAPI, page: int) -> dict[str, Any]:
    text = api.GetUTF8Text()
    rows = api.GetTSVText(page)
    words = 0
    for row in rows.splitlines():
        cells = row.split("\t")
        if len(cells) == 12 and cells[0] == "5" and float(cells[10]) >= 0 and cells[11].strip():
            words += 1
    return {
        "text": text.rstrip(),
        "confidence": int(api.MeanTextConf()) if words else 0,
        "words": words,
        "tsv_rows": rows,
    }


def recognise(
    image: Image.Image, lang: str, psm: int, tsv: bool = False, page: int = 0
) -> dict[str, Any]:
    """OCR one 8-bit image: `text`, `confidence` (mean word confidence 0-100), `words`
    (words with a confidence and non-empty text) and, with `tsv`, Tesseract's TSV with its
    header line (`page` is the 0-based page number written in the rows)."""
    with _lock:
        api = api_for(lang)
        try:
            api.SetPageSegMode(psm)
            api.SetImage(image)
            api.Recognize()
            result = _page_result(api, page)
        finally:
            api.Clear()
    rows = result.pop("tsv_rows")
    if tsv:
        result["tsv"] = TSV_HEADER + "\n" + rows
    return result


def detect_orientation(image: Image.Image) -> dict[str, Any] | None:
    """Tesseract OSD on an 8-bit image: `orient_deg` (the page is turned that many degrees
    clockwise), `orient_conf`, `script_name`, `script_conf`; None when there is too little
    text to tell, or no osd.traineddata (orientation is a nicety, not a reason to fail)."""
    with _lock:
        if not _osd:
            try:
                _osd.append(_init("osd", tesserocr.OEM.TESSERACT_ONLY))
            except FleetError:
                log.warning(
                    "no osd.traineddata in %s: pages are not turned upright",
                    settings().tessdata_dir,
                )
                return None
        api = _osd[0]
        try:
            api.SetPageSegMode(tesserocr.PSM.OSD_ONLY)
            api.SetImage(image)
            found = api.DetectOrientationScript()
        finally:
            api.Clear()
    return found or None
