"""Vector inputs (SVG documents, PDF pages): drawn at the job's density, at exactly the
raster the quote billed - `jobs.rasters.at_density` of the size the header declared (the
same `billing.header` reading the gateway priced), checked against the limits first, in a
process of their own with a deadline and a memory allowance (worker/sandbox.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from billing.header import Header, header_of_bytes
from imagefleet.settings import settings
from jobs.errors import ErrorCode, FleetError
from jobs.rasters import at_density
from worker import pdf, sandbox, svg
from worker.budget import vector_allowance
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


def _drawn(render: Callable[[], Frame], shape: tuple[int, int, int], what: str) -> Frame:
    """resvg and PDFium hold the GIL while they draw: they draw in a process of their own,
    with a deadline and a memory allowance (worker/sandbox.py), unless the operator chose
    to draw in the job's process (FLEET_VECTOR_TIMEOUT=0: only the hard limit stops it)."""
    seconds = settings().vector_timeout
    if seconds <= 0:
        return render()
    allowance = vector_allowance(shape[0] * shape[1])
    return sandbox.draw(render, shape, seconds, allowance, what)


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
        frame = _drawn(lambda: pdf.render(data, page, size), (size[1], size[0], 3), "the PDF page")
        facts = {"page_sizes": [declared.page_size(index) for index in range(declared.frames)]}
    else:
        facts = dict(svg.written(data))
        frame = _drawn(lambda: svg.render(data, size)[0], (size[1], size[0], 4), "the SVG")
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
