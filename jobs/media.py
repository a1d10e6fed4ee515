"""The image formats the fleet reads and writes, one record each: its name (billing/header.py
sniffs it from the bytes; the codec decodes it), the file extensions that name it, and its
media type. The output keys' extensions, the CLI's `batch` file list and the content type
of a signed download link all come from this table.

The fleet reads a file by its bytes, never by its name: the extensions say only which files
a client should send, and what an output key names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaFormat:
    name: str
    media_type: str
    extensions: tuple[str, ...]  # lower case, without the dot
    written: bool = False  # an output format (`format`, or kept from the input)


FORMATS = (
    MediaFormat("png", "image/png", ("png",), written=True),
    MediaFormat("jpeg", "image/jpeg", ("jpg", "jpeg"), written=True),
    MediaFormat("webp", "image/webp", ("webp",), written=True),
    MediaFormat("avif", "image/avif", ("avif",), written=True),
    MediaFormat("jxl", "image/jxl", ("jxl",), written=True),
    MediaFormat("gif", "image/gif", ("gif",), written=True),
    MediaFormat("tiff", "image/tiff", ("tif", "tiff"), written=True),
    MediaFormat("bmp", "image/bmp", ("bmp",)),
    MediaFormat("heif", "image/heif", ("heic", "heif")),
    MediaFormat("jp2", "image/jp2", ("jp2", "j2k", "j2c")),
    MediaFormat("svg", "image/svg+xml", ("svg",)),
    MediaFormat("pdf", "application/pdf", ("pdf",)),
)
BY_NAME = {f.name: f for f in FORMATS}
# Every extension of a file the fleet reads (what `imagefleet batch` sends).
READ_EXTENSIONS = frozenset(ext for f in FORMATS for ext in f.extensions)
# What an output key's extension says of its format (the key says it: `auto` keeps to it).
FORMAT_OF_EXTENSION = {ext: f.name for f in FORMATS if f.written for ext in f.extensions}


def extension(name: str) -> str:
    """A file name's or key's extension, lower case, without the dot ('' if none)."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def written_media_type(fmt: str | None) -> str | None:
    """The media type of an output format (what the fleet writes), None for any other."""
    found = BY_NAME.get(fmt or "")
    return found.media_type if found is not None and found.written else None
