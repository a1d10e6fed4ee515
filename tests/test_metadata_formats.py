"""metadata of the formats users bring from phones, editors and scanners: HEIC/HEIF, JPEG XL,
JPEG 2000, SVG and PDF pages.

Inputs are written here by encoders the fleet does not use to decode (pillow-heif's writer,
pillow-jxl-plugin's encoder, Pillow's JPEG 2000 and PDF writers, SVG and PDF text), so the
expected facts are what was written; the corpus files check the same on real files (skipped
when ../shared is absent). Each input goes through the runner's decode (`decode_inputs` for
a metadata job, at the job's page and density) and the handler.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.analysis import MetadataJob
from tests.codec_helpers import needs_corpus, swapped_rg_profile
from tests.images import CORPUS, pdf_of, running_record
from worker.inputs import decode_inputs
from worker.ops.metadata import metadata, view_box

CFG = load_settings()
# The facts every format has (tests/test_ops_analysis.py checks them for the older ones).
COMMON = {
    "format",
    "width",
    "height",
    "stored_width",
    "stored_height",
    "mode",
    "space",
    "channels",
    "has_alpha",
    "bit_depth",
    "orientation",
    "has_exif",
    "icc",
    "frames",
    "loop",
    "durations",
}


def meta(data: bytes, **spec: Any) -> dict[str, Any]:
    """The runner's decode of a metadata job's input, then the handler."""
    job = MetadataJob(input="in", **spec)
    record = running_record(job)
    output = metadata(decode_inputs(record, [data], CFG), job, CFG)
    assert output.picture is None and set(output.fields) == {"metadata"}
    json.dumps(output.fields)  # plain JSON types only
    return output.fields["metadata"]


def pillow(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(width: int = 40, height: int = 30, alpha: bool = False) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    planes = [xs * 255 // (width - 1), ys * 255 // (height - 1), np.full_like(xs, 90)]
    if alpha:
        planes.append(np.full_like(xs, 128))
    return Image.fromarray(np.stack(planes, axis=-1).astype(np.uint8))


# --- HEIC / HEIF ------------------------------------------------------------------------------


def heif(image: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, **options)
    return out.getvalue()


def heif_10_bit(colour: dict[str, int]) -> bytes:
    ys, xs = np.mgrid[0:20, 0:30]
    deep = np.stack([xs * 2000, ys * 3000, np.full_like(xs, 30000)], axis=-1).astype(np.uint16)
    image = pillow_heif.from_bytes(mode="RGB;16", size=(30, 20), data=deep.tobytes())
    out = io.BytesIO()
    image.save(out, quality=-1, nclx_profile=colour)
    return out.getvalue()


PQ_BT2020 = {
    "color_primaries": 9,
    "transfer_characteristics": 16,
    "matrix_coefficients": 9,
    "full_range_flag": 0,
}
P3_SRGB = {
    "color_primaries": 12,
    "transfer_characteristics": 13,
    "matrix_coefficients": 6,
    "full_range_flag": 1,
}


def test_heif_rgba() -> None:
    facts = meta(heif(gradient(alpha=True), quality=90, nclx_profile=P3_SRGB))
    assert set(facts) == COMMON | {"hdr", "nclx"}
    assert facts["format"] == "heif" and facts["frames"] == 1
    assert (facts["width"], facts["height"]) == (40, 30)
    assert facts["has_alpha"] is True and facts["channels"] == 4 and facts["mode"] == "RGBA"
    assert facts["bit_depth"] == 8 and facts["hdr"] is False
    assert facts["nclx"] == {
        "colour_primaries": 12,
        "transfer_characteristics": 13,
        "matrix_coefficients": 6,
        "full_range": True,
    }


def test_heif_10_bit_hdr() -> None:
    """A 10-bit PQ / BT.2020 HEIF: its stored depth and colour, though it decodes to 8 bits."""
    facts = meta(heif_10_bit(PQ_BT2020))
    assert facts["format"] == "heif" and (facts["width"], facts["height"]) == (30, 20)
    assert facts["bit_depth"] == 10 and facts["hdr"] is True
    assert facts["nclx"] == {
        "colour_primaries": 9,
        "transfer_characteristics": 16,
        "matrix_coefficients": 9,
        "full_range": False,
    }
    assert facts["has_alpha"] is False and facts["channels"] == 3


def test_heif_10_bit_sdr_is_not_hdr() -> None:
    facts = meta(heif_10_bit(P3_SRGB))
    assert facts["bit_depth"] == 10 and facts["hdr"] is False
    assert facts["nclx"]["transfer_characteristics"] == 13


def test_heif_icc_profile() -> None:
    image = gradient()
    image.info["icc_profile"] = swapped_rg_profile()
    facts = meta(heif(image, quality=90))
    assert facts["icc"] == "Swapped red-green test"


@needs_corpus
def test_corpus_heic() -> None:
    facts = meta((CORPUS / "thumbor-image.heic").read_bytes())
    assert facts["format"] == "heif" and (facts["width"], facts["height"]) == (256, 256)
    assert facts["has_alpha"] is False and facts["bit_depth"] == 8 and facts["hdr"] is False


# --- JPEG XL, JPEG 2000 -----------------------------------------------------------------------


def test_jxl_rgba() -> None:
    import pillow_jxl  # noqa: F401  (the encoder: registers JXL with Pillow)

    facts = meta(pillow(gradient(alpha=True), "JXL", lossless=True))
    assert set(facts) == COMMON
    assert facts["format"] == "jxl" and (facts["width"], facts["height"]) == (40, 30)
    assert facts["has_alpha"] is True and facts["channels"] == 4 and facts["bit_depth"] == 8


@needs_corpus
def test_corpus_jxl() -> None:
    """cshum/imagor's JPEG XL in an ISOBMFF container: 640x416 grey, with ICC and EXIF."""
    facts = meta((CORPUS / "jxl-isobmff.jxl").read_bytes())
    assert facts["format"] == "jxl" and (facts["width"], facts["height"]) == (640, 416)
    assert facts["space"] == "grey" and facts["channels"] == 1 and facts["has_alpha"] is False
    assert facts["icc"] is not None and facts["has_exif"] is True


@pytest.mark.parametrize(
    ("image", "mode", "channels", "depth"),
    [
        (gradient(), "RGB", 3, 8),
        (gradient(alpha=True), "RGBA", 4, 8),
        (Image.new("I;16", (40, 30), 3000), "I;16", 1, 16),
    ],
    ids=["rgb", "rgba", "grey-16"],
)
def test_jp2(image: Image.Image, mode: str, channels: int, depth: int) -> None:
    facts = meta(pillow(image, "JPEG2000"))
    assert set(facts) == COMMON
    assert facts["format"] == "jp2" and (facts["width"], facts["height"]) == (40, 30)
    assert (facts["mode"], facts["channels"], facts["bit_depth"]) == (mode, channels, depth)
    assert facts["has_alpha"] is (mode == "RGBA")


# --- SVG --------------------------------------------------------------------------------------


def svg(attributes: str) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" {attributes}>'
        '<rect x="1" y="1" width="8" height="4" fill="#c00"/></svg>'
    ).encode()


@pytest.mark.parametrize(
    ("attributes", "density", "declared", "drawn"),
    [
        ('width="2in" height="1in" viewBox="0 0 20 10"', 72, (144, 72), (144, 72)),
        ('width="2in" height="1in" viewBox="0 0 20 10"', 150, (144, 72), (300, 150)),
        ('width="25.4mm" height="36pt" viewBox="0,0,20,10"', 72, (72, 36), (72, 36)),
        ('viewBox="0 0 20 10"', 72, (20, 10), (20, 10)),
        ('width="100%" height="100%" viewBox="0 0 20 10"', 300, (20, 10), (83, 42)),
    ],
    ids=["inches", "inches-at-150", "mm-and-pt", "viewbox-only", "percent-at-300"],
)
def test_svg(
    attributes: str, density: int, declared: tuple[int, int], drawn: tuple[int, int]
) -> None:
    facts = meta(svg(attributes), density=density)
    assert set(facts) == COMMON | {"density", "declared_width", "declared_height", "svg"}
    assert facts["format"] == "svg" and facts["density"] == density
    assert (facts["declared_width"], facts["declared_height"]) == declared
    assert (facts["width"], facts["height"]) == drawn
    assert facts["svg"]["view_box"] == [0, 0, 20, 10]
    assert facts["has_alpha"] is True and facts["frames"] == 1 and facts["bit_depth"] == 8


def test_svg_without_a_view_box() -> None:
    facts = meta(svg('width="30" height="12px"'))
    assert (facts["width"], facts["height"]) == (30, 12)
    assert facts["svg"]["view_box"] is None


@pytest.mark.parametrize(
    ("attributes", "written"),
    [
        ('width="2in" height="1in" viewBox="0 0 20 10"', ("2in", "1in")),
        ('width="25.4mm" height="36pt" viewBox="0,0,20,10"', ("25.4mm", "36pt")),
        ('width="100%" height="100%" viewBox="0 0 20 10"', ("100%", "100%")),
        ('width="30" height="12px"', ("30", "12px")),
    ],
)
def test_svg_size_as_written(attributes: str, written: tuple[str, str]) -> None:
    facts = meta(svg(attributes))
    assert (facts["svg"]["width"], facts["svg"]["height"]) == written


def test_svg_size_not_written() -> None:
    facts = meta(svg('viewBox="0 0 20 10"'))
    assert (facts["svg"]["width"], facts["svg"]["height"]) == (None, None)


@needs_corpus
@pytest.mark.parametrize(
    ("name", "size", "box"),
    [("imagor-test.svg", (620, 472), None), ("circle.svg", (8, 8), [0, 0, 8, 8])],
)
def test_corpus_svg(name: str, size: tuple[int, int], box: list[int] | None) -> None:
    facts = meta((CORPUS / name).read_bytes())
    assert (facts["width"], facts["height"]) == size
    assert (facts["declared_width"], facts["declared_height"]) == size
    assert facts["svg"]["view_box"] == box


@needs_corpus
def test_corpus_svg_size_as_written() -> None:
    facts = meta((CORPUS / "imagor-test.svg").read_bytes())
    assert (facts["svg"]["width"], facts["svg"]["height"]) == ("620", "472")


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("0 0 20 10", [0, 0, 20, 10]),
        (" -5,2.5  40 , 10.25 ", [-5, 2.5, 40, 10.25]),
        ("0 0 20", None),
        ("a b c d", None),
        (None, None),
    ],
)
def test_view_box_parsing(written: str | None, parsed: list[float] | None) -> None:
    assert view_box(written) == parsed


# --- PDF --------------------------------------------------------------------------------------


def two_page_pdf() -> bytes:
    """Pillow's PDF writer: at 72 dpi a pixel is a point, so pages of 200x100 and 50x80 pt."""
    first, second = Image.new("RGB", (200, 100), "red"), Image.new("RGB", (50, 80), "blue")
    return pillow(first, "PDF", save_all=True, append_images=[second], resolution=72)


def rotated_pdf() -> bytes:
    """One page, written by hand: media box 300x200, crop box 100x50, /Rotate 90."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /CropBox [10 10 110 60]"
        b" /Rotate 90 >>",
    ]
    return pdf_of(objects)


def test_pdf_pages() -> None:
    facts = meta(two_page_pdf())
    assert set(facts) == COMMON | {"density", "declared_width", "declared_height", "pages"}
    assert facts["format"] == "pdf" and facts["frames"] == 2
    assert facts["pages"] == [{"width": 200, "height": 100}, {"width": 50, "height": 80}]
    assert (facts["width"], facts["height"]) == (200, 100) and facts["density"] == 72
    assert facts["has_alpha"] is False and facts["loop"] is None and facts["durations"] == []


def test_pdf_second_page_at_144_dpi() -> None:
    facts = meta(two_page_pdf(), page=1, density=144)
    assert (facts["declared_width"], facts["declared_height"]) == (50, 80)
    assert (facts["width"], facts["height"]) == (100, 160) and facts["density"] == 144
    assert facts["pages"] == [{"width": 200, "height": 100}, {"width": 50, "height": 80}]


def test_pdf_crop_box_and_rotation() -> None:
    facts = meta(rotated_pdf())
    assert facts["pages"] == [{"width": 50, "height": 100}]
    assert (facts["width"], facts["height"]) == (50, 100)


@needs_corpus
def test_corpus_pdf() -> None:
    facts = meta((CORPUS / "imagor-sample.pdf").read_bytes(), density=150)
    assert facts["format"] == "pdf" and facts["frames"] == 2
    assert facts["pages"] == [{"width": 612, "height": 792}] * 2
    assert (facts["width"], facts["height"]) == (1275, 1650)
