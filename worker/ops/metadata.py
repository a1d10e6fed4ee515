"""metadata: facts about the input, from its header (`Picture.source`) and decoded frames.

`width`/`height` are as displayed (after EXIF orientation); `stored_width`/`stored_height`
are as stored in the file. No image is produced.

Some formats add facts of their own, from what the codec puts in `Picture.source`:
- HEIF/HEIC: `nclx`, the colour description (ITU-T H.273 code points) when the file has
  one (source `nclx`: pillow-heif's `nclx_profile`), and `hdr` (a PQ or HLG transfer);
- SVG and PDF: `density` (the dpi drawn at), `declared_width`/`declared_height` (the size at
  72 dpi: px for an SVG, points for a PDF page; source keys of the same names); an SVG's
  `svg`: its `width` and `height` attributes as written (source `svg_width`, `svg_height`)
  and its viewBox as four numbers (source `view_box`, written or parsed); a PDF's `pages`:
  every page's size in points (source `page_sizes`, (width, height) pairs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobs.analysis import MetadataJob
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings

_GREY_MODES = {"L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SPACES = {"1": "b-w", "CMYK": "cmyk", "LAB": "lab", "YCbCr": "ycbcr", "HSV": "hsv"}
# H.273 transfer characteristics of high dynamic range: SMPTE ST 2084 (PQ) and ARIB HLG.
_HDR_TRANSFERS = {16, 18}
_LIST_SEPARATOR = re.compile(r"[\s,]+")


def colour_space(mode: str) -> str:
    """A sharp-like colour-space name for a Pillow mode."""
    if mode in _GREY_MODES:
        return "grey"
    return _SPACES.get(mode, "srgb")


def colour_channels(mode: str) -> int:
    """Colour channels of a Pillow mode, alpha not counted."""
    if mode == "1" or mode in _GREY_MODES:
        return 1
    return 4 if mode == "CMYK" else 3


def _number(value: float) -> int | float:
    """JSON-friendly: 612.0 -> 612, 595.276 stays."""
    return int(value) if float(value).is_integer() else float(value)


def view_box(written: object) -> list[int | float] | None:
    """An SVG viewBox (the attribute as written, or its four numbers) as [min_x, min_y,
    width, height]; None if absent or not four numbers (renderers ignore such a viewBox)."""
    try:
        if isinstance(written, str):
            parts = [part for part in _LIST_SEPARATOR.split(written.strip()) if part]
        elif isinstance(written, (list, tuple)):
            parts = list(written)
        else:
            return None
        numbers = [float(part) for part in parts]
    except (TypeError, ValueError):
        return None
    return [_number(n) for n in numbers] if len(numbers) == 4 else None


def nclx(profile: object) -> dict[str, Any] | None:
    """A HEIF nclx colour box (pillow-heif's `nclx_profile`) as its code points."""
    if not isinstance(profile, Mapping):
        return None
    return {
        "colour_primaries": int(profile.get("color_primaries", 2)),
        "transfer_characteristics": int(profile.get("transfer_characteristics", 2)),
        "matrix_coefficients": int(profile.get("matrix_coefficients", 2)),
        "full_range": bool(profile.get("full_range_flag", False)),
    }


def _format_facts(fmt: str, source: Mapping[str, Any]) -> dict[str, Any]:
    """The facts only some formats have (none for the raster formats of old)."""
    if fmt == "heif":
        colour = nclx(source.get("nclx"))
        transfer = colour["transfer_characteristics"] if colour else None
        return {"hdr": transfer in _HDR_TRANSFERS, "nclx": colour}
    if fmt not in ("svg", "pdf"):
        return {}
    facts: dict[str, Any] = {
        "density": _number(float(source["density"])),
        "declared_width": _number(source["declared_width"]),
        "declared_height": _number(source["declared_height"]),
    }
    if fmt == "svg":
        facts["svg"] = {
            "width": source.get("svg_width"),
            "height": source.get("svg_height"),
            "view_box": view_box(source.get("view_box")),
        }
    else:
        facts["pages"] = [
            {"width": _number(width), "height": _number(height)}
            for width, height in source.get("page_sizes") or ()
        ]
    return facts


def describe(picture: Picture) -> dict[str, Any]:
    source = picture.source
    mode = str(source.get("mode", "RGB"))
    orientation = int(source.get("orientation", 1) or 1)
    width, height = picture.width, picture.height
    stored_width, stored_height = (height, width) if orientation >= 5 else (width, height)
    has_alpha = picture.has_alpha
    frames = int(source.get("frames", len(picture.frames)) or 1)
    durations = [int(d) for d in source.get("durations") or []]
    animated = frames > 1
    fmt = str(source.get("format", picture.format))
    return {
        "format": fmt,
        "width": width,
        "height": height,
        "stored_width": stored_width,
        "stored_height": stored_height,
        "mode": mode,
        "space": colour_space(mode),
        "channels": colour_channels(mode) + (1 if has_alpha else 0),
        "has_alpha": has_alpha,
        "bit_depth": int(source.get("bit_depth", 16 if picture.first.dtype.itemsize == 2 else 8)),
        "orientation": orientation,
        "has_exif": bool(source.get("has_exif", False)),
        "icc": source.get("icc"),
        "frames": frames,
        "loop": source.get("loop") if animated else None,
        # Only when the codec read every frame's duration (an `animated` decode).
        "durations": durations if animated and len(durations) == frames else [],
    } | _format_facts(fmt, source)


def metadata(inputs: list[Picture], spec: MetadataJob, cfg: Settings) -> OpOutput:
    return OpOutput(None, {"metadata": describe(inputs[0])})
