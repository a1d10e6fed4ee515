"""exif-strip: an upright copy with no EXIF, GPS, XMP, IPTC or ICC.

Nothing to do on the pixels: decoding already applied the EXIF orientation (and converted
any ICC profile to sRGB), and encoding never writes metadata.
"""

from __future__ import annotations

from jobs.formats import ExifStripJob
from worker.ops import OpOutput
from worker.picture import Picture


def exif_strip(inputs: list[Picture], spec: ExifStripJob) -> OpOutput:
    return OpOutput(inputs[0], {"stripped": True})
