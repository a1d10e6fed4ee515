"""Vector inputs (SVG documents, PDF pages): drawn at the job's density, at exactly the
raster the quote billed - `jobs.rasters.at_density` of the size the header declared (the
same `billing.header` reading the gateway priced), checked against the limits first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from billing.header import Header, header_of_bytes
from jobs.errors import ErrorCode, FleetError
from jobs.rasters import at_density
from worker import pdf, svg
from worker.picture import Frame


def kind(data: bytes) -> str | None:
    """The vector format ("pdf", "svg") or None (raster), as billing.header tells them
    apart: a PDF marker first, or within the first KiB of bytes no raster signature
    claims; XML (a "<" after any byte order mark and white space) is SVG or nothing."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if pdf.looks_like_pdf(data):  # junk before the marker: the header reader decides
        found = header_of_bytes(data)
        return "pdf" if found is not None and found.format == "pdf" else None
    return "svg" if svg.looks_like_svg(data) else None


def header(data: bytes, fmt: str, page: int) -> Header:
    """The declared page sizes (at 72 dpi) the quote used; PDFium's own reading of a PDF
    whose header billing.header could not read. An SVG without a readable size (no
    absolute width and height, no viewBox) cannot be drawn at a billed size."""
    found = header_of_bytes(data, page > 0)
    if found is not None and found.scalable:
        return found
    if fmt == "pdf":
        return pdf.probe(data, page)
    raise FleetError(
        ErrorCode.IMAGE_PARSE_FAILED,
        "input SVG declares no size: give the root <svg> a width and height or a viewBox",
    )


def decode(
    data: bytes, fmt: str, page: int, density: float, check: Callable[[int, int], None]
) -> tuple[Frame, dict[str, Any]]:
    """Page `page` drawn at `density` dpi, and the facts `metadata` reports of it (a PDF's
    `page_sizes`, every page at 72 dpi; an SVG's root `svg_width`, `svg_height`, `view_box`
    as written). `check(width, height)` refuses a raster over the limits before drawing."""
    declared = header(data, fmt, page)
    if page >= declared.frames:
        raise pdf.past_last_page(page, declared.frames)
    size = at_density(declared.page_size(page), density)
    check(*size)
    facts: dict[str, Any]
    if fmt == "pdf":
        frame = pdf.render(data, page, size)
        facts = {"page_sizes": [declared.page_size(index) for index in range(declared.frames)]}
    else:
        frame, written = svg.render(data, size)
        facts = dict(written)
    return frame, facts | {
        "format": fmt,
        "width": size[0],
        "height": size[1],
        "mode": "RGB" if fmt == "pdf" else "RGBA",
        "bit_depth": 8,
        "orientation": 1,
        "has_exif": False,
        "icc": None,
        "frames": declared.frames,
        "loop": None,
        "durations": [],
        "density": density,
        "declared_width": declared.page_size(page)[0],
        "declared_height": declared.page_size(page)[1],
    }
