"""PDF pages: rendered by PDFium (pypdfium2) at exactly the size the quote billed.

pypdfium2's PDFium is built without V8 and XFA (`PDFIUM_INFO.flags` is empty; a test
checks), and no form environment is ever initialised here, so PDF JavaScript (an
/OpenAction, form actions) has nothing to run on; PDFium does not fetch external resources.
Rendering is native code: the job's soft time limit waits for it, the hard limit stops it.
PDFium is not thread-safe: every use holds billing's PDFIUM_LOCK, as its header reader does.
"""

from __future__ import annotations

import numpy as np
import pypdfium2
import pypdfium2.raw as pdfium_c

from billing.header import Header
from billing.vector_header import PDFIUM_LOCK
from jobs.errors import ErrorCode, FleetError
from worker.picture import Frame

_WHITE = (255, 255, 255, 255)  # pages are drawn on paper: opaque white, as viewers do


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]  # (readers allow a little junk before the marker)


def _open(data: bytes) -> pypdfium2.PdfDocument:
    try:
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:  # damaged, encrypted, not a PDF
        raise FleetError(
            ErrorCode.IMAGE_PARSE_FAILED, f"input PDF cannot be read ({exc})"
        ) from None


def past_last_page(page: int, pages: int) -> FleetError:
    return FleetError(
        ErrorCode.VALIDATION_ERROR,
        f"page {page} is past the last page; the document has {pages}"
        f" page{'s' if pages != 1 else ''} - at `$.page`",
    )


def probe(data: bytes, page: int = 0) -> Header:
    """The page count and page `page`'s size in points (its crop box, else media box,
    turned by /Rotate), for a PDF whose header billing.header could not read."""
    with PDFIUM_LOCK:
        return _probe(data, page)


def _probe(data: bytes, page: int) -> Header:
    pdf = _open(data)
    try:
        pages = len(pdf)
        if pages == 0:
            raise FleetError(ErrorCode.IMAGE_PARSE_FAILED, "input PDF has no pages")
        width, height = pdf[min(page, pages - 1)].get_size()
        size = (max(1, round(width)), max(1, round(height)))
        return Header(
            "pdf", *size, pages, pages=(size,) * (min(page, pages - 1) + 1), scalable=True
        )
    finally:
        pdf.close()


def render(data: bytes, page: int, size: tuple[int, int]) -> Frame:
    """Page `page` (0-based) drawn at `size` pixels (at_density of its size): RGB."""
    with PDFIUM_LOCK:
        return _render(data, page, size)


def _render(data: bytes, page: int, size: tuple[int, int]) -> Frame:
    pdf = _open(data)
    try:
        if page >= len(pdf):
            raise past_last_page(page, len(pdf))
        width, height = size
        bitmap = pypdfium2.PdfBitmap.new_native(
            width, height, format=pdfium_c.FPDFBitmap_BGR, rev_byteorder=True
        )
        bitmap.fill_rect(_WHITE, 0, 0, width, height)
        flags = pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_REVERSE_BYTE_ORDER  # RGB byte order
        drawn = pdf[page]
        try:  # the page scaled onto the whole bitmap: exactly `size`, whatever the rounding
            pdfium_c.FPDF_RenderPageBitmap(bitmap, drawn, 0, 0, width, height, 0, flags)
        finally:
            drawn.close()
        return np.array(bitmap.to_numpy()[:, :, :3])  # a copy: the bitmap's memory goes
    except pypdfium2.PdfiumError as exc:
        raise FleetError(
            ErrorCode.IMAGE_PARSE_FAILED, f"input PDF page cannot be drawn ({exc})"
        ) from None
    finally:
        pdf.close()
