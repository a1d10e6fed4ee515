"""Each operation's peak memory budget, in bytes per pixel of its largest raster.

The largest raster is the biggest of an operation's input and output frames, in pixels
(for resize with `fit: cover`, the scaled image the window is cut from). The budget bounds
the peak RSS growth while the operation runs - its output included, its inputs not - for
8-bit frames: growth <= BYTES_PER_PIXEL[op] x pixels + FIXED_BYTES (strip temporaries,
OpenCV's row buffers, whatever the size). 16-bit frames add SIXTEEN_BIT_EXTRA a pixel
(their output's extra bytes); an animation adds its output's other frames. Measured by
`python -m bench.memory`; enforced by tests/test_memory_budget.py.

How: pointwise float work runs in strips of STRIP_PIXELS writing into one preallocated
output; filters and resampling of premultiplied alpha run on one float32 plane at a time
(worker.picture.filter_planes). For scale, an 8-bit RGBA frame is 4 bytes a pixel. Not
covered: ocr and from-html (Tesseract's and Chromium's own memory).
"""

from __future__ import annotations

STRIP_PIXELS = 1 << 17  # ~128k pixels: ~1.5 MB per float32 RGB temporary
FIXED_BYTES = 32 << 20
SIXTEEN_BIT_EXTRA = 4.0

BYTES_PER_PIXEL: dict[str, float] = {
    "crop": 5,  # the window's copy (entropy: + a luma plane, 1 B/px)
    "resize": 14,  # growing RGBA: float alpha + one float plane + the output
    "convert": 0,  # nothing: the picture is passed on
    "compress": 0,
    "rotate": 17,  # any angle RGBA: float alpha out + one plane in and out + the output
    "blur": 13,  # RGBA: float alpha + one float plane (blurred in place) + the output
    "sharpen": 9,  # one float plane (blurred in place) + the output
    "grayscale": 5,  # the output
    "exif-strip": 0,
    "adjust": 5,  # the output (Lab work in strips)
    "trim": 5,  # the cut copy
    "extend": 5,  # the output
    "composite": 5,  # the base's copy (the blend in strips)
    "contact-sheet": 17,  # the sheet + one cell: resampled and its float planes
    "metadata": 0,
    "dominant-color": 9,  # float alpha + one float plane, before the 256 px downsample
    "placeholder": 5,  # one float plane at a time, before the 100 px downsample (measured 4)
}
# A pipeline holds the previous step's picture (one 8-bit RGBA frame) while a step runs.
BYTES_PER_PIXEL["pipeline"] = max(BYTES_PER_PIXEL.values()) + 4
# Variants run one pipeline at a time over the input, encoding each variant's picture as it
# ends (its bytes are kept, not its raster); an `auto` encode's SSIM works in bands of rows.
BYTES_PER_PIXEL["variants"] = BYTES_PER_PIXEL["pipeline"]


def allowed(operation: str, pixels: int, sixteen_bit: bool = False) -> float:
    """The most an operation may grow RSS by, given its largest raster's pixel count."""
    per_pixel = BYTES_PER_PIXEL[operation] + (SIXTEEN_BIT_EXTRA if sixteen_bit else 0)
    return per_pixel * pixels + FIXED_BYTES


# `quality: "auto"` (and `format: "auto"`): on top of the operation's own budget, the whole
# picture's encodes (the encoder's own memory, one encode at a time, at most
# quality.FULL_ENCODES of them) and the decoded encode the SSIM reads a band at a time.
# Measured at 9 MP on a picture that needs every full encode (a 1-px checkerboard whose
# sampled tiles are flat): JPEG 16, PNG 15, WebP 23, JPEG XL 29, AVIF 31 bytes a pixel; before,
# the whole-picture float planes and the palette count grew 28-73.
AUTO_BYTES_PER_PIXEL: dict[str, float] = {"jpeg": 20, "png": 20, "webp": 28, "jxl": 34, "avif": 36}


def auto_allowed(fmt: str, pixels: int) -> float:
    """The most an `auto` encode of `pixels` in `fmt` may grow RSS by (any format: the most)."""
    per_pixel = AUTO_BYTES_PER_PIXEL.get(fmt, max(AUTO_BYTES_PER_PIXEL.values()))
    return per_pixel * pixels + FIXED_BYTES


# An SVG or PDF page drawn in its own process (worker/sandbox.py) may map this much beyond
# its parent: resvg's filters and PDFium's bitmaps, the PNG resvg-py hands back and its
# decode, 4 bytes a pixel each, a few times over.
VECTOR_BYTES_PER_PIXEL = 32
VECTOR_FIXED_BYTES = 512 << 20


def vector_allowance(pixels: int) -> int:
    return VECTOR_BYTES_PER_PIXEL * pixels + VECTOR_FIXED_BYTES
