"""exif-strip: an upright copy with no EXIF, GPS, XMP, IPTC or ICC.

Nothing to do on the pixels: decoding already applied the EXIF orientation (and converted
any ICC profile to sRGB), and encoding never writes metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.formats import ExifStripJob
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def exif_strip(inputs: list[Picture], spec: ExifStripJob, cfg: Settings) -> OpOutput:
    return OpOutput(inputs[0], {"stripped": True})
