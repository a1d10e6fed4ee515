"""What a header tells of an image before anything is decoded (billing/header.py reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Header:
    # "png" | "jpeg" | "gif" | "webp" | "avif" | "tiff" | "bmp" | "heif" | "jxl" | "jp2"
    # | "svg" | "pdf"
    format: str
    # As stored for the raster formats whose orientation is EXIF's (it does not change the
    # pixel count); as presented where the container rotates (HEIF irot, JPEG XL orientation).
    width: int
    height: int
    frames: int  # 1 for stills; frames or pages of an animation / multi-page file
    # (width, height) of each page as the decoder presents it, where pages differ (TIFF
    # pages; a GIF canvas that later frames grow); empty: every page is width x height.
    # PDF: every page's size, always.
    pages: tuple[tuple[int, int], ...] = ()
    # SVG and PDF: sizes are at 72 dpi and the job's `density` sets the pixels drawn.
    scalable: bool = False

    def page_size(self, page: int) -> tuple[int, int]:
        return self.pages[page] if page < len(self.pages) else (self.width, self.height)

    def largest(self) -> tuple[int, int]:
        """The biggest page: what decoding every page costs per page, at most."""
        return max([(self.width, self.height), *self.pages], key=lambda s: s[0] * s[1])
