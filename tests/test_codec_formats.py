"""Codec: HEIC/HEIF, JPEG XL, JPEG 2000, SVG and PDF pages decode to the pixels an
independent reference says (the values a file was generated from, or another decoder),
at the sizes the quote bills; JPEG XL encodes; AVIF works through pillow-avif-plugin too.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from jobs.rasters import at_density
from tests.codec_helpers import needs_corpus
from tests.images import CORPUS, ORIENTATION, photo_like
from worker.codec import CONTENT_TYPES, Limits, decode, encode, extension
from worker.formats import ensure_plugins
from worker.picture import Picture

LIMITS = Limits()
ROOT = Path(__file__).resolve().parent.parent


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def _scene(width: int = 64, height: int = 48, alpha: bool = False) -> np.ndarray:
    """Flat blocks (no chroma edges to smear): lossless coders give them back exactly."""
    pixels = np.zeros((height, width, 4 if alpha else 3), np.uint8)
    pixels[..., :3] = (20, 90, 200)
    pixels[: height // 2, : width // 2, :3] = (230, 40, 20)
    pixels[height // 2 :, width // 2 :, :3] = (250, 250, 250)
    if alpha:
        pixels[..., 3] = 255
        pixels[:, : width // 4, 3] = 0
        pixels[:, width // 4 : width // 2, 3] = 128
    return pixels


def _save(pixels: np.ndarray | Image.Image, fmt: str, **options: object) -> bytes:
    ensure_plugins()
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


# --- HEIC / HEIF ---------------------------------------------------------------------------


def _heif(pixels: np.ndarray, orientation: int | None = None, in_info: bool = True) -> bytes:
    """A lossless 4:4:4 HEIF. With `in_info`, pillow-heif turns the EXIF orientation into
    irot/imir transforms (and keeps the tag); as a save option the tag alone is written."""
    image = Image.fromarray(pixels)
    options: dict[str, object] = {"quality": -1, "chroma": 444}
    if orientation is not None:
        exif = image.getexif()
        exif[ORIENTATION] = orientation
        if in_info:
            image.info["exif"] = exif.tobytes()
        else:
            options["exif"] = exif
    return _save(image, "HEIF", **options)


def test_heif_decodes_as_libheif_does_with_alpha() -> None:
    pixels = _scene(alpha=True)
    data = _heif(pixels)
    picture = decode(data, LIMITS)
    reference = np.asarray(pillow_heif.open_heif(io.BytesIO(data)).to_pillow().convert("RGBA"))
    assert picture.format == "heif" and picture.has_alpha
    assert np.array_equal(picture.first, reference)
    assert np.abs(picture.first.astype(int) - pixels).max() <= 2  # lossless, RGB<->YCbCr


TURNS = {2: lambda a: a[:, ::-1], 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", [2, 6, 8])
def test_heif_irot_and_imir_transforms_are_applied_once(orientation: int) -> None:
    pixels = _scene(64, 32)
    data = _heif(pixels, orientation)
    assert (b"imir" if orientation == 2 else b"irot") in data  # a real transform box
    picture = decode(data, LIMITS)
    expected = TURNS[orientation](pixels)
    assert picture.first.shape == expected.shape  # not turned a second time by the tag
    assert np.abs(picture.first.astype(int) - expected).max() <= 2
    assert picture.source["orientation"] == orientation  # the tag, as metadata reports it


@pytest.mark.parametrize("orientation", [6, 8])
def test_heif_exif_orientation_without_a_transform_is_applied(orientation: int) -> None:
    pixels = _scene(64, 32)
    data = _heif(pixels, orientation, in_info=False)
    assert b"irot" not in data and b"imir" not in data
    picture = decode(data, LIMITS)
    assert np.abs(picture.first.astype(int) - TURNS[orientation](pixels)).max() <= 2


# --- JPEG XL and JPEG 2000 ------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [False, True])
def test_jxl_lossless_decodes_to_its_source(alpha: bool) -> None:
    pixels = photo_like(80, 60)
    if alpha:
        pixels = np.dstack([pixels, np.linspace(0, 255, 80 * 60).reshape(60, 80).astype(np.uint8)])
    picture = decode(_save(pixels, "JXL", lossless=True), LIMITS)
    assert picture.format == "jxl"
    assert np.array_equal(picture.first, pixels)


@pytest.mark.parametrize("fmt", ["JPEG2000"])
@pytest.mark.parametrize("kind", ["jp2", "j2k"])
def test_jpeg2000_lossless_round_trip(fmt: str, kind: str) -> None:
    pixels = photo_like(70, 50)
    data = _save(pixels, fmt, no_jp2=kind == "j2k")  # (reversible 5/3 wavelet: lossless)
    assert data[:4] == (b"\xff\x4f\xff\x51" if kind == "j2k" else b"\x00\x00\x00\x0c")
    picture = decode(data, LIMITS)
    assert picture.format == "jp2"
    assert np.array_equal(picture.first, pixels)


def test_jxl_output_decodes_close_to_its_source() -> None:
    pixels = photo_like(160, 120)
    data = encode(Picture([pixels], "png"), "jxl", 90, None)
    assert CONTENT_TYPES["jxl"] == "image/jxl" and extension("jxl") == "jxl"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JXL"
        back = np.asarray(image.convert("RGB"))
    jpeg = np.asarray(Image.open(io.BytesIO(_save(pixels, "JPEG", quality=90))))
    # Measured on this sharp-edged scene: 32.9 dB (effort 4), JPEG at the same quality 30.9.
    assert _psnr(back, pixels) > max(30.0, _psnr(jpeg, pixels))


def test_jxl_output_keeps_alpha() -> None:
    pixels = _scene(alpha=True)
    data = encode(Picture([pixels], "png"), "jxl", 95, None)
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    assert np.abs(back[..., 3].astype(int) - pixels[..., 3]).max() <= 4


# --- SVG -----------------------------------------------------------------------------------

RECTS = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">'
    b'<rect x="0" y="0" width="20" height="10" fill="#ff0000"/>'
    b'<rect x="20" y="10" width="20" height="20" fill="#0000ff"/></svg>'
)


@pytest.mark.parametrize("density", [72, 144])
def test_svg_rectangles_land_where_declared(density: int) -> None:
    picture = decode(RECTS, LIMITS, density=density)
    k = density // 72
    assert (picture.width, picture.height) == (40 * k, 30 * k)
    expected = np.zeros((30 * k, 40 * k, 4), np.uint8)  # transparent where nothing is drawn
    expected[: 10 * k, : 20 * k] = (255, 0, 0, 255)
    expected[10 * k :, 20 * k :] = (0, 0, 255, 255)
    assert np.array_equal(picture.first, expected)  # edges on whole pixels: no blending
    assert picture.format == "svg" and picture.source["declared_width"] == 40


@pytest.mark.parametrize(
    "size, declared",
    [
        ('width="1in" height="0.5in"', (72, 36)),
        ('width="100%" viewBox="0 0 30 20"', (30, 20)),
        ('width="40" viewBox="0 0 20 10"', (40, 20)),  # one side: the other keeps the aspect
    ],
)
@pytest.mark.parametrize("density", [72, 150])
def test_svg_units_and_viewbox_give_the_billed_size(
    size: str, declared: tuple[int, int], density: int
) -> None:
    data = (
        f'<svg xmlns="http://www.w3.org/2000/svg" {size}><rect width="100%" height="100%"/></svg>'
    )
    picture = decode(data.encode(), LIMITS, density=density)
    assert (picture.width, picture.height) == at_density(declared, density)
    assert (picture.first[..., 3] == 255).all()  # the drawing fills the raster exactly


def test_an_svg_too_large_to_draw_is_refused_before_drawing() -> None:
    data = b'<svg xmlns="http://www.w3.org/2000/svg" width="10000000" height="10000000"/>'
    with pytest.raises(FleetError) as caught:
        decode(data, LIMITS)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE


def test_an_svg_without_a_size_is_a_parse_failure() -> None:
    with pytest.raises(FleetError) as caught:
        decode(b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', LIMITS)
    assert caught.value.code is ErrorCode.IMAGE_PARSE_FAILED


# --- PDF -----------------------------------------------------------------------------------


def _pdf(*pages: np.ndarray) -> bytes:
    """Pillow's PDF writer: each image one page, 1 pt per pixel (JPEG-compressed)."""
    images = [Image.fromarray(p) for p in pages]
    return _save(images[0], "PDF", save_all=True, append_images=images[1:], resolution=72.0)


@pytest.mark.parametrize("density", [72, 144])
def test_pdf_page_renders_its_image(density: int) -> None:
    pixels = _scene(80, 60)
    picture = decode(_pdf(pixels), LIMITS, density=density)
    k = density // 72
    assert (picture.width, picture.height) == (80 * k, 60 * k) and not picture.has_alpha
    expected = pixels.repeat(k, axis=0).repeat(k, axis=1)
    # DCT-coded page and resampled edges: close on average, exact away from the edges
    assert np.abs(picture.first.astype(int) - expected).mean() < 4
    assert np.abs(picture.first[5 * k, 5 * k].astype(int) - (230, 40, 20)).max() <= 10


def test_pdf_page_selects_the_page_and_past_the_last_is_refused() -> None:
    first, second = _scene(80, 60), _scene(80, 60)[::-1].copy()
    data = _pdf(first, second)
    picture = decode(data, LIMITS, page=1)
    off = {
        name: np.abs(picture.first.astype(int) - page).mean()
        for name, page in (("first", first), ("second", second))
    }
    assert off["second"] < 4 < off["first"], off
    assert picture.source["frames"] == 2
    with pytest.raises(FleetError) as caught:
        decode(data, LIMITS, page=2)
    assert caught.value.code is ErrorCode.VALIDATION_ERROR
    assert "the document has 2 pages" in caught.value.message


# --- AVIF through pillow-avif-plugin (a Pillow without AVIF) -------------------------------

_PLUGIN_DECODE = """
import io, sys
import numpy as np
from PIL import Image
from worker.formats import load_avif_plugin
load_avif_plugin()  # as ensure_plugins does where Pillow has no AVIF
from worker.codec import Limits, decode
assert Image.OPEN["AVIF"][0].__module__ == "pillow_avif.AvifImagePlugin", Image.OPEN["AVIF"]
picture = decode(open(sys.argv[1], "rb").read(), Limits())
np.save(sys.argv[2], picture.first)
"""


def test_avif_through_the_plugin_matches_pillows_own_decoder(tmp_path: Path) -> None:
    """Both sides use libavif (the plugin's own copy), but YUV->RGB conversion may round
    differently between libavif builds (libyuv or not): within 2 levels a channel."""
    pixels = photo_like(96, 64)
    source = tmp_path / "in.avif"
    source.write_bytes(_save(pixels, "AVIF", quality=90))
    out = tmp_path / "plugin.npy"
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PLUGIN_DECODE), str(source), str(out)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    assert Image.OPEN["AVIF"][0].__module__ == "PIL.AvifImagePlugin"  # this process: Pillow's
    own = decode(source.read_bytes(), LIMITS).first
    plugin = np.load(out)
    assert plugin.shape == own.shape == (64, 96, 3)
    assert np.abs(plugin.astype(int) - own).max() <= 2


# --- the shared corpus ----------------------------------------------------------------------

CORPUS_SIZES = {
    "thumbor-image.heic": (256, 256),
    "jxl-isobmff.jxl": (640, 416),
    "imagor-sample.pdf": (612, 792),
    "imagor-test.svg": (620, 472),
    "circle.svg": (8, 8),
}


@needs_corpus
@pytest.mark.parametrize("name", list(CORPUS_SIZES))
@pytest.mark.parametrize("density", [72, 144])
def test_corpus_files_decode_at_their_sizes(name: str, density: int) -> None:
    data = (CORPUS / name).read_bytes()
    picture = decode(data, LIMITS, density=density)
    width, height = CORPUS_SIZES[name]
    if name.endswith((".svg", ".pdf")):
        width, height = at_density((width, height), density)
    assert (picture.width, picture.height) == (width, height)


@needs_corpus
def test_corpus_heic_equals_libheif_and_jxl_is_grey() -> None:
    data = (CORPUS / "thumbor-image.heic").read_bytes()
    reference = np.asarray(pillow_heif.open_heif(io.BytesIO(data)).to_pillow().convert("RGB"))
    assert np.array_equal(decode(data, LIMITS).first, reference)
    jxl = decode((CORPUS / "jxl-isobmff.jxl").read_bytes(), LIMITS)
    assert np.array_equal(jxl.first[..., 0], jxl.first[..., 2])  # a grey file stays grey


def test_a_pdf_marker_decides_only_where_no_raster_signature_does() -> None:
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "%PDF-1.7 in a text chunk")
    png = decode(_save(_scene(), "PNG", pnginfo=text), LIMITS)
    assert png.format == "png" and np.array_equal(png.first, _scene())
    shifted = decode(b"junk\r\n" + _pdf(_scene(80, 60)), LIMITS)  # PDFium skips the junk
    assert shifted.format == "pdf" and (shifted.width, shifted.height) == (80, 60)


def test_an_svg_viewbox_of_another_aspect_keeps_its_letterbox() -> None:
    """Only rounding is stretched away: a document that lays its square drawing in a 2:1
    viewport keeps it centred (xMidYMid meet), transparent either side."""
    data = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 10 10">'
        b'<rect width="10" height="10" fill="#00ff00"/></svg>'
    )
    picture = decode(data, LIMITS, density=144)
    assert (picture.width, picture.height) == (200, 100)
    alpha = picture.first[..., 3]
    assert (alpha[:, 50:150] == 255).all() and (alpha[:, :50] == 0).all()
    assert (alpha[:, 150:] == 0).all()


def test_svg_text_is_drawn_with_the_system_fonts() -> None:
    """A text-free SVG skips loading fonts (speed); one with text must still draw glyphs."""
    from worker.svg import render

    text = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="80">'
        b'<rect width="200" height="80" fill="white"/>'
        b'<text x="10" y="60" font-family="DejaVu Sans" font-size="56" fill="black">Hg</text>'
        b"</svg>"
    )
    frame, _ = render(text, (200, 80))
    dark = (frame[:, :, :3].max(axis=2) < 64).sum()
    assert dark > 200, f"only {dark} dark pixels: the glyphs were not drawn"


def test_a_heif_with_several_images_is_read_as_its_primary_image_only() -> None:
    """The header plans (and the quote bills) the primary image: `animated` never makes the
    worker decode the others."""
    pillow_heif.register_heif_opener()
    first, second = Image.new("RGB", (64, 48), (200, 0, 0)), Image.new("RGB", (64, 48), "blue")
    buf = io.BytesIO()
    first.save(buf, "HEIF", save_all=True, append_images=[second], quality=90)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 2  # really two
    picture = decode(buf.getvalue(), Limits(100, 1000), animated=True)
    assert len(picture.frames) == 1
    red = picture.frames[0][..., :3].reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 and red[2] < 60  # the first (red) image
