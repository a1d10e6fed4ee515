"""metadata: facts about the input, from its header (`Picture.source`) and decoded frames.

`width`/`height` are as displayed (after EXIF orientation); `stored_width`/`stored_height`
are as stored in the file. No image is produced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.analysis import MetadataJob
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings

_GREY_MODES = {"L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SPACES = {"1": "b-w", "CMYK": "cmyk", "LAB": "lab", "YCbCr": "ycbcr", "HSV": "hsv"}


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
    return {
        "format": source.get("format", picture.format),
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
    }


def metadata(inputs: list[Picture], spec: MetadataJob, cfg: Settings) -> OpOutput:
    return OpOutput(None, {"metadata": describe(inputs[0])})
