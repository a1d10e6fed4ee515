"""SVG and PDF sizes at 72 dpi (jobs.rasters.BASE_DPI) from their bytes, never drawn.

SVG: the root <svg> start tag within the first SVG_PREFIX bytes, read as text: no XML
parser, so no entity is expanded and no DTD is processed (an XML declaration, comments,
processing instructions and a DOCTYPE with an internal subset are skipped by their
delimiters). width/height in px, pt, pc, in, mm, cm (or unitless) convert at 72 dpi; a
percentage, em/ex or a missing one takes the viewBox's side; an entity reference, an unknown
unit, a non-positive or non-finite length, or no size at all is unreadable (None). A gzipped
SVG (.svgz) is not recognised: its size would cost a decompression (None).

PDF: the whole object (its page tree and cross-reference table can be anywhere), opened by
PDFium (pypdfium2, imported at the first PDF) which reads each page's size from the page
dictionaries (crop box within the media box, inherited through the page tree, /Rotate 90/270
swapping the sides) without loading any page's content. Not openable (damaged, encrypted with
a password) or more than MAX_PDF_PAGES pages: None.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from billing.header_types import Header
from billing.ranged import Src, Stop

SVG_PREFIX = 256 * 1024  # the root tag must end within this many bytes of the file's start
MAX_PDF_PAGES = 10_000  # a page tree is attacker-controlled; each page is one size lookup

# PDFium is not thread-safe (not even across documents): every call holds this lock. The
# worker's PDF renderer must hold it too if it runs PDFium in threads.
PDFIUM_LOCK = threading.Lock()

_PX_PER_UNIT = {"": 1.0, "px": 1.0, "pt": 1.0, "pc": 12.0, "in": 72.0}
_PX_PER_UNIT |= {"mm": 72 / 25.4, "cm": 720 / 25.4}
_RELATIVE = {"%", "em", "ex"}  # the viewBox's side instead
_LENGTH = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z%]*)\s*")
_ATTR = re.compile(r"""\s+([^\s=/>"']+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_SPACE = re.compile(r"[ \t\r\n]*")
_TAG_END = re.compile(r"\s*/?>")
_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?svg(?=[\s/>])")
_DOCTYPE_TOKEN = re.compile(r"""<!--|[\[\]>"']""")


@dataclass(frozen=True)
class SvgFacts:
    width: str | None  # the root's width attribute as written (None: absent)
    height: str | None
    view_box: tuple[float, float, float, float] | None  # min-x, min-y, width, height
    size: tuple[float, float]  # the declared size in px at 72 dpi (the rule above)


def _skip_doctype(text: str, pos: int) -> int:
    """The offset after a DOCTYPE's closing '>', past quoted literals, comments and an
    internal subset in brackets (whose '>'s close declarations, not the DOCTYPE)."""
    subset = False
    while match := _DOCTYPE_TOKEN.search(text, pos):
        token, pos = match.group(), match.end()
        if token in ("<!--", '"', "'"):
            close = "-->" if token == "<!--" else token
            end = text.find(close, pos)
            if end < 0:
                break  # the literal or comment runs past the prefix
            pos = end + len(close)
        elif token in "[]":
            subset = token == "["
        elif not subset:
            return pos
    raise Stop


def _root_attributes(text: str) -> dict[str, str]:
    """The attributes of the root element's start tag, if the root is <svg>."""
    pos = 3 if text.startswith("\xef\xbb\xbf") else 0  # UTF-8's byte order mark, as latin-1
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # always matches
        if text.startswith("<?", pos) or text.startswith("<!--", pos):
            opener, close = ("<?", "?>") if text[pos + 1] == "?" else ("<!--", "-->")
            end = text.find(close, pos + len(opener))
            if end < 0:
                raise Stop
            pos = end + len(close)
        elif text.startswith("<!DOCTYPE", pos):
            pos = _skip_doctype(text, pos + 9)
        elif root := _ROOT.match(text, pos):
            pos = root.end()
            break
        else:
            raise Stop  # another root element, or not XML
    attributes: dict[str, str] = {}
    while match := _ATTR.match(text, pos):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        attributes.setdefault(match.group(1), value)
        pos = match.end()
    if not _TAG_END.match(text, pos):
        raise Stop  # malformed, or the tag runs past the prefix
    return attributes


def _length(value: str) -> float | None:
    """px at 72 dpi; None for a relative length (percent, em, ex)."""
    match = _LENGTH.fullmatch(value) if len(value) <= 64 else None
    if "&" in value or not match:
        raise Stop  # an entity reference (never expanded) or not a length
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit in _RELATIVE:
        return None
    if unit not in _PX_PER_UNIT or not math.isfinite(number) or number <= 0:
        raise Stop
    px = number * _PX_PER_UNIT[unit]
    if not math.isfinite(px):
        raise Stop
    return px


def _view_box(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if "&" in value:
        raise Stop
    try:
        box = tuple(float(part) for part in re.split(r"[\s,]+", value.strip()))
    except ValueError:
        return None  # an invalid viewBox is ignored, as renderers do
    if len(box) != 4 or not all(map(math.isfinite, box)) or box[2] <= 0 or box[3] <= 0:
        return None
    return box


def _facts(head: bytes) -> SvgFacts:
    attributes = _root_attributes(head.decode("latin-1"))  # markup is ASCII; values too here
    width, height = attributes.get("width"), attributes.get("height")
    box = _view_box(attributes.get("viewBox"))
    w = _length(width) if width is not None else None
    h = _length(height) if height is not None else None
    if w is not None and h is not None:
        return SvgFacts(width, height, box, (w, h))
    if box is None:
        raise Stop  # relative or missing, and no viewBox to take it from
    if w is not None:  # one side given: the other keeps the viewBox's aspect, as browsers do
        return SvgFacts(width, height, box, (w, w * box[3] / box[2]))
    if h is not None:
        return SvgFacts(width, height, box, (h * box[2] / box[3], h))
    return SvgFacts(width, height, box, (box[2], box[3]))


def svg_facts(data: bytes) -> SvgFacts | None:
    """The declared width, height and viewBox of an SVG (for metadata); None: unreadable."""
    try:
        return _facts(data[:SVG_PREFIX])
    except Stop:
        return None


def svg(src: Src, count_frames: bool) -> Header | None:
    width, height = _facts(src.prefix(SVG_PREFIX)).size
    return Header("svg", max(1, round(width)), max(1, round(height)), 1, scalable=True)


def _pdf_sizes(data: bytes) -> list[tuple[float, float]] | None:
    import pypdfium2  # lazily: only a PDF needs PDFium

    with PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError:
            return None
        try:
            count = len(document)
            if count > MAX_PDF_PAGES:
                return None
            sizes = []
            for index in range(count):  # a page tree whose /Count lies: the pages that exist
                try:
                    sizes.append(document.get_page_size(index))
                except pypdfium2.PdfiumError:
                    break
            return sizes
        finally:
            document.close()


def pdf(src: Src, count_frames: bool) -> Header | None:
    """Every page's size: frames is the page count, pages each page's size at 72 dpi."""
    sizes = _pdf_sizes(src.whole())
    if not sizes or not all(math.isfinite(w) and math.isfinite(h) for w, h in sizes):
        return None
    pages = tuple((max(1, round(w)), max(1, round(h))) for w, h in sizes)
    return Header("pdf", *pages[0], len(pages), pages, scalable=True)
