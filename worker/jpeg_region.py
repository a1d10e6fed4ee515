"""Decode only the part of a JPEG a crop window needs: libjpeg (Pillow's decoder) stops after
the window's last row, so a window near the top costs a fraction of the whole image.

The window is given upright (after EXIF orientation); it maps to a box of the stored
image, which is decoded down to its bottom row, cut, and then turned upright by the codec.
Columns are decoded in full: Pillow's decoder has no column crop (libjpeg-turbo's
`jpeg_crop_scanline` is not reachable from it).
"""

from __future__ import annotations

from PIL import Image, ImageFile

Window = tuple[int, int, int, int]  # x, y, width, height


def stored_window(window: Window, orientation: int, width: int, height: int) -> Window:
    """The stored image's box that becomes `window` once `orientation` (TIFF 6.0 table) is
    applied; `width` x `height` is the stored size."""
    x, y, w, h = window
    boxes = {
        2: (width - x - w, y, w, h),  # mirrored left-right
        3: (width - x - w, height - y - h, w, h),  # turned 180
        4: (x, height - y - h, w, h),  # mirrored top-bottom
        5: (y, x, h, w),  # transposed
        6: (y, height - x - w, h, w),  # turned 90 clockwise to show
        7: (width - y - h, height - x - w, h, w),  # transversed
        8: (width - y - h, x, h, w),  # turned 90 counter-clockwise to show
    }
    return boxes.get(orientation, window)


def decode_rows(data: bytes, image: ImageFile.ImageFile, rows: int) -> Image.Image | None:
    """The first `rows` rows of an opened JPEG, all columns; None if the stream ends
    before them (a truncated file: the caller's full decode says why)."""
    width = image.size[0]
    tile = image.tile[0]
    out = Image.new(image.mode, (width, rows))
    decoder = Image._getdecoder(image.mode, tile.codec_name, tile.args, image.decoderconfig)
    try:
        decoder.setimage(out.im, (0, 0, width, rows))
        consumed, error = decoder.decode(data[tile.offset :])
    finally:
        decoder.cleanup()
    # Done: consumed < 0. Stopping before the last row makes libjpeg's finish step report a
    # broken stream (-2, "too few scanlines read"): expected unless every row was read.
    if consumed >= 0 or (error != 0 and not (error == -2 and rows < image.size[1])):
        return None
    return out


def decode_window(
    data: bytes, image: ImageFile.ImageFile, window: Window, orientation: int
) -> Image.Image | None:
    """The stored box behind the upright `window`, still stored (the codec turns it).
    None for a file without its end marker: a truncated JPEG fails as a whole (the full
    decode's strict error), even where the window's rows are all there."""
    if not data.endswith(b"\xff\xd9"):
        return None
    x, y, w, h = stored_window(window, orientation, *image.size)
    rows = decode_rows(data, image, y + h)
    return None if rows is None else rows.crop((x, y, x + w, y + h))
