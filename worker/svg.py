"""SVG inputs: sanitised, then rasterised by resvg at exactly the size the quote billed.

resvg itself would read local files: an `<image href>` holding an absolute or relative
path is loaded from disk (measured), so nothing reaches it unsanitised. The sanitiser
parses with expat, refusing entity declarations (no entity bombs, no external entities),
and re-serialises the tree (no DOCTYPE, processing instruction or comment survives), after:
- dropping <script>, <foreignObject> and the other elements that embed or run things;
- dropping every on* attribute (event handlers);
- dropping every href / xlink:href that is neither a same-document `#fragment` nor a
  `data:` URI of a raster image (PNG, JPEG, GIF, WebP: an SVG data URI is a document of
  its own, which resvg would render with the same file access);
- removing @import rules and pointing every other CSS `url(...)` (in <style>, style
  attributes and presentation attributes) that is not such a reference at a fragment that
  does not exist, so it fails as an unreachable resource would (a fill paints nothing, a
  filtered element is not drawn).
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat

import numpy as np
import resvg_py
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from worker.picture import Frame

SVG_NS = "http://www.w3.org/2000/svg"
CSS_DPI = 96.0  # SVG user units: CSS px, 96 to the inch (resvg's unit conversion)
_DROPPED = {
    "script",
    "foreignObject",
    "iframe",
    "object",
    "embed",
    "audio",
    "video",
    "handler",
    "listener",
}
_RASTER_DATA = re.compile(r"data:image/(png|jpeg|jpg|gif|webp)[;,]", re.I)
_URL = re.compile(r"url\(\s*(?:\"([^\"]*)\"|'([^']*)'|([^)]*))\s*\)", re.I)
_IMPORT = re.compile(r"@import\b[^;]*;?", re.I)
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(px|in|cm|mm|pt|pc)?\s*$")
BLOCKED = "blocked-reference"  # what a refused url() points at instead: nothing, as if unreachable
_CSS_UNITS = {"px": 1.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "pt": 4 / 3, "pc": 16.0}


def _parse_failed(detail: str) -> FleetError:
    return FleetError(ErrorCode.IMAGE_PARSE_FAILED, f"input SVG cannot be read: {detail}")


def looks_like_svg(data: bytes) -> bool:
    """What may be XML: "<" first, after any byte order mark and white space (no raster
    format starts so). Whether its root is <svg> the parser says."""
    return data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<")


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _allowed(reference: str) -> bool:
    value = reference.strip()
    return value.startswith("#") or _RASTER_DATA.match(value) is not None


def _clean_css(text: str) -> str:
    def url(match: re.Match[str]) -> str:
        target = next((g for g in match.groups() if g is not None), "")
        return match.group(0) if _allowed(target) else f"url(#{BLOCKED})"

    return _URL.sub(url, _IMPORT.sub("", text))


def _refuse_entities(*_: object) -> NoReturn:
    raise ValueError("entity declarations are not accepted")


def _parse(data: bytes) -> ET.Element:
    # A first pass with a bare expat parser refuses any entity declaration (ElementTree's
    # C parser offers no hook); the tree is then parsed with nothing left to expand.
    guard = expat.ParserCreate()
    guard.EntityDeclHandler = _refuse_entities
    guard.UnparsedEntityDeclHandler = _refuse_entities
    guard.ExternalEntityRefHandler = _refuse_entities
    try:
        guard.Parse(data, True)
        root = ET.fromstring(data)
    except (expat.ExpatError, ET.ParseError, ValueError) as exc:
        raise _parse_failed(str(exc)) from None
    if _local(root.tag) != "svg":
        raise _parse_failed(f"the document is <{_local(root.tag)}>, not <svg>")
    return root


def _clean(element: ET.Element) -> None:
    for child in list(element):
        if not isinstance(child.tag, str) or _local(child.tag) in _DROPPED:
            element.remove(child)
        else:
            _clean(child)
    for name, value in list(element.attrib.items()):
        local = _local(name)
        if local.lower().startswith("on") or (local == "href" and not _allowed(value)):
            del element.attrib[name]
        elif "url(" in value.lower() or "@import" in value.lower():
            element.attrib[name] = _clean_css(value)
    if _local(element.tag) == "style" and element.text:
        element.text = _clean_css(element.text)


def sanitise(data: bytes) -> ET.Element:
    """The document's tree, with everything that could fetch or run removed."""
    root = _parse(data)
    _clean(root)
    return root


def _user_units(length: str | None) -> float | None:
    match = _LENGTH.match(length or "")
    if match is None:
        return None
    return float(match.group(1)) * _CSS_UNITS[match.group(2) or "px"]


def _view_box_size(written: str) -> tuple[float, float] | None:
    parts = [p for p in re.split(r"[\s,]+", written.strip()) if p]
    try:
        width, height = float(parts[2]), float(parts[3])
    except (IndexError, ValueError):
        return None
    return (width, height) if len(parts) == 4 and width > 0 and height > 0 else None


def _fit(root: ET.Element, size: tuple[int, int]) -> None:
    """Make the root viewport `size` pixels, the drawing scaled into it. Without a viewBox
    the drawing's coordinates are the declared width and height in user units: that box
    becomes the viewBox. Where the viewBox would miss the pixel size by less than a pixel
    (the size's rounding, not the document's layout) and the document sets no
    preserveAspectRatio, it is stretched to fill it: no half-covered edge rows."""
    written = root.get("viewBox")
    if written is None:
        width, height = _user_units(root.get("width")), _user_units(root.get("height"))
        if not width or not height:
            raise _parse_failed("no viewBox and no absolute width and height")
        root.set("viewBox", f"0 0 {width:g} {height:g}")
        root.set("preserveAspectRatio", "none")
    elif root.get("preserveAspectRatio") is None and (box := _view_box_size(written)):
        scale = min(size[0] / box[0], size[1] / box[1])
        if size[0] - box[0] * scale < 1 and size[1] - box[1] * scale < 1:
            root.set("preserveAspectRatio", "none")
    root.set("width", str(size[0]))
    root.set("height", str(size[1]))


def _written(root: ET.Element) -> dict[str, str | None]:
    return {
        "svg_width": root.get("width"),
        "svg_height": root.get("height"),
        "view_box": root.get("viewBox"),
    }


def written(data: bytes) -> dict[str, str | None]:
    """The root's width, height and viewBox as written (what `render` reports too)."""
    return _written(sanitise(data))


def render(data: bytes, size: tuple[int, int]) -> tuple[Frame, dict[str, str | None]]:
    """The sanitised SVG drawn at `size` pixels (at_density of its declared size): RGBA,
    and the root's width, height and viewBox as written (`svg_width`, `svg_height`,
    `view_box`). resvg is native code holding the GIL: worker/vector.py draws it in a
    process of its own (worker/sandbox.py)."""
    root = sanitise(data)
    written = _written(root)
    _fit(root, size)
    markup = ET.tostring(root, encoding="unicode")
    try:
        png = resvg_py.svg_to_bytes(
            svg_string=markup,
            dpi=CSS_DPI,
            resources_dir=None,
            # Loading the system's fonts is most of a small render (18 of 28 ms for the
            # corpus's 620x472 file): only an SVG with text needs them.
            skip_system_fonts=root.find(".//{*}text") is None,
        )
    except ValueError as exc:
        raise _parse_failed(str(exc)) from None
    # resvg-py hands back PNG bytes only: its encode and this decode are a good part of a
    # large render (measured at 2583x1967: 264 ms to PNG bytes, ~100 ms back to pixels).
    with Image.open(io.BytesIO(png)) as image:
        frame = np.asarray(image.convert("RGBA"))
    if frame.shape[:2] != (size[1], size[0]):
        raise _parse_failed(f"rendered {frame.shape[1]}x{frame.shape[0]}, not {size[0]}x{size[1]}")
    return frame, written
