"""billing.header on the formats of issue 16 (HEIF/HEIC, JPEG XL, JPEG 2000, SVG, PDF): sizes
from the bytes alone, checked against the encoders that made the files and the decoders
that read them (pillow-heif, pillow-jxl-plugin, Pillow's OpenJPEG, PDFium), against the
size rules for SVG (72 dpi) and against PDFs written by hand; never an exception, and
within the reading budget."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

from billing.header import Header, header_of_bytes, read_header
from billing.vector_header import SVG_PREFIX, svg_facts
from tests.header_helpers import Counting, gradient
from tests.images import pdf_of

pillow_heif = pytest.importorskip("pillow_heif")
pytest.importorskip("pillow_jxl")  # registers the JXL plugin with Pillow
pillow_heif.register_heif_opener()

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "images"


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def decoded_size(data: bytes) -> tuple[int, int]:
    """The size the decoder presents (pillow-heif applies irot; OpenJPEG subtracts offsets)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


# ---- HEIF / HEIC


@pytest.mark.parametrize(
    ("size", "mode"), [((300, 200), "RGB"), ((97, 211), "RGBA"), ((8, 8), "L")]
)
def test_heif_sizes_match_the_decoder(size: tuple[int, int], mode: str) -> None:
    data = encode(gradient(mode, size), "HEIF")
    assert header_of_bytes(data) == Header("heif", *size, 1)
    assert decoded_size(data) == size


@pytest.mark.parametrize(("orientation", "swapped"), [(1, False), (3, False), (6, True), (8, True)])
def test_heif_irot_turns_the_presented_size(orientation: int, swapped: bool) -> None:
    data = encode(gradient("RGB", (300, 200)), "HEIF", exif=exif_orientation(orientation))
    expected = (200, 300) if swapped else (300, 200)
    assert (b"irot" in data) == (orientation != 1)  # pillow-heif writes the turn as irot
    assert decoded_size(data) == expected
    assert header_of_bytes(data) == Header("heif", *expected, 1)


def _major(data: bytes, brand: bytes) -> bytes:
    return data[:8] + brand + data[12:]


def test_heif_and_avif_told_apart_by_the_primary_item_under_a_structural_brand() -> None:
    heic = encode(gradient("RGB", (64, 48)), "HEIF")
    avif = encode(gradient("RGB", (64, 48)), "AVIF")
    assert header_of_bytes(avif) == Header("avif", 64, 48, 1)
    assert header_of_bytes(_major(heic, b"mif1")) == Header("heif", 64, 48, 1)  # hvc1 item
    assert header_of_bytes(_major(avif, b"mif1")) == Header("avif", 64, 48, 1)  # av01 item


# ---- JPEG XL


@pytest.mark.parametrize(
    "size",
    [(64, 64), (64, 8), (400, 300), (300, 300), (320, 180), (33, 17), (1000, 2), (2, 1000)],
    ids=lambda s: f"{s[0]}x{s[1]}",  # small (div8) and large forms, ratios 1, 3, 5, none
)
def test_jxl_codestream_sizes_match_the_decoder(size: tuple[int, int]) -> None:
    data = encode(gradient("RGB", size), "JXL")
    assert data[:2] == b"\xff\x0a"  # the naked codestream
    assert header_of_bytes(data) == Header("jxl", *size, 1)
    assert decoded_size(data) == size


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_jxl_container_with_the_codestream_in_jxlp_boxes() -> None:
    boxed = encode(gradient("RGB", (123, 45)), "JXL", exif=exif_orientation(1))
    assert boxed[4:8] == b"JXL " and b"jxlp" in boxed  # the encoder's own container
    assert header_of_bytes(boxed) == Header("jxl", 123, 45, 1) and decoded_size(boxed) == (123, 45)
    code = encode(gradient("RGB", (123, 45)), "JXL")
    signature = boxed[:12] + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
    split = signature + _box(b"jxlp", bytes(4) + code[:3]) + _box(b"jxlp", b"\x80\0\0\1" + code[3:])
    whole = signature + _box(b"jxlc", code)
    for data in (split, whole):  # the SizeHeader cut across two jxlp boxes; one jxlc box
        assert header_of_bytes(data) == Header("jxl", 123, 45, 1)
        assert decoded_size(data) == (123, 45)


def _jxl_bits(fields: list[tuple[int, int]]) -> bytes:
    """A codestream start from (value, bit count) fields, least significant bit first."""
    value, pos = 0, 0
    for field, bits in fields:
        value, pos = value | field << pos, pos + bits
    return b"\xff\x0a" + value.to_bytes((pos + 7) // 8 + 1, "little")


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [(1, (700, 500)), (4, (700, 500)), (5, (500, 700)), (8, (500, 700))],
)
def test_jxl_orientation_transposes_the_presented_size(
    orientation: int, expected: tuple[int, int]
) -> None:
    """ImageMetadata's orientation (18181-1: all_default, extra_fields, then orientation-1
    in 3 bits): 5-8 transpose, as libjxl and jxl-oxide present the image."""
    size = [(0, 1), (1, 2), (500 - 1, 13), (0, 3), (1, 2), (700 - 1, 13)]  # large form
    data = _jxl_bits([*size, (0, 1), (1, 1), (orientation - 1, 3)])
    assert header_of_bytes(data) == Header("jxl", *expected, 1)
    assert header_of_bytes(_jxl_bits([*size, (1, 1)])) == Header("jxl", 700, 500, 1)


# ---- JPEG 2000


@pytest.mark.parametrize("no_jp2", [False, True], ids=["jp2", "j2k"])
@pytest.mark.parametrize("offset", [(0, 0), (16, 5)])
def test_jpeg2000_sizes_match_openjpeg(no_jp2: bool, offset: tuple[int, int]) -> None:
    tiles = {"tile_size": (512, 512)}  # OpenJPEG needs a tile grid to place an offset image
    data = encode(gradient("RGB", (301, 77)), "JPEG2000", no_jp2=no_jp2, offset=offset, **tiles)
    assert data.startswith(b"\xff\x4f\xff\x51" if no_jp2 else b"\x00\x00\x00\x0cjP  ")
    assert header_of_bytes(data) == Header("jp2", 301, 77, 1)
    assert decoded_size(data) == (301, 77)


# ---- SVG: the declared size at 72 dpi, read as text


def svg(attributes: str, prolog: str = "") -> bytes:
    return f'{prolog}<svg xmlns="http://www.w3.org/2000/svg" {attributes}><g/></svg>'.encode()


def svg_header(width: int, height: int) -> Header:
    return Header("svg", width, height, 1, scalable=True)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        ("100", "50", (100, 50)),
        ("100px", "50px", (100, 50)),
        ("72pt", "36pt", (72, 36)),  # 1 pt = 1/72 in = 1 px at 72 dpi
        ("2in", "0.5in", (144, 36)),
        ("2pc", "1pc", (24, 12)),  # 1 pc = 12 pt
        ("25.4mm", "12.7mm", (72, 36)),
        ("2.54cm", "5.08cm", (72, 144)),
        (" 1e2 ", "+5E1", (100, 50)),  # SVG numbers: white space, exponents, a sign
        ("99.6", "0.4", (100, 1)),  # rounded, at least 1
    ],
)
def test_svg_units_at_72_dpi(width: str, height: str, expected: tuple[int, int]) -> None:
    assert header_of_bytes(svg(f'width="{width}" height="{height}"')) == svg_header(*expected)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('viewBox="0 0 8 8"', (8, 8)),  # circle.svg's shape: the viewBox alone
        ('viewBox="-10,-10,300,200"', (300, 200)),  # commas, negative origin
        ('width="100%" height="50%" viewBox="0 0 320 240"', (320, 240)),
        ('width="10em" height="3ex" viewBox="0 0 320 240"', (320, 240)),
        ('width="640" viewBox="0 0 320 240"', (640, 480)),  # the other side keeps the aspect
        ("width='30' height='40' viewBox='0 0 1 1'", (30, 40)),  # absolute sides win
    ],
)
def test_svg_relative_or_missing_sides_take_the_viewbox(
    attributes: str, expected: tuple[int, int]
) -> None:
    assert header_of_bytes(svg(attributes)) == svg_header(*expected)


@pytest.mark.parametrize(
    "data",
    [
        svg(""),  # no size at all
        svg('width="100%" height="100%"'),  # relative and no viewBox
        svg('width="100"'),  # one side only
        svg('width="0" height="10"'),
        svg('width="-5" height="10"'),
        svg('width="1e999" height="10"'),  # infinite
        svg('width="10furlongs" height="10"'),
        svg('width="abc" height="10"'),
        svg('width="1' + "0" * 100 + 'x" height="10"'),
        svg('width="&w;" height="10"'),  # an entity reference is never expanded
        svg('viewBox="0 0 &s; &s;"'),
        svg('width="10" height="10"')[:30],  # the tag cut
        b'<?xml version="1.0"?><html><body/></html>',  # XML, but not SVG
        b"<svgfoo width='1' height='1'/>",
        b"<!-- never closed <svg width='1' height='1'/>",
    ],
)
def test_svg_unreadable_sizes_are_none(data: bytes) -> None:
    assert header_of_bytes(data) is None


def test_svg_prolog_is_skipped_without_expanding_anything() -> None:
    prolog = (
        '\ufeff<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        "<!-- a comment with <svg width='1' height='1'> inside -->\n"
        "<?xml-stylesheet href='a.css' type='text/css'?>\n"
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://x/svg11.dtd" [\n'
        '  <!ENTITY w "500"> <!-- a ] and a > in a comment -->\n'
        "  <!ENTITY q 'it''s > ]'>\n"
        "]>\n"
    )
    data = svg('width="320" height="200"', prolog)
    assert header_of_bytes(data) == svg_header(320, 200)
    assert header_of_bytes(svg('width="&w;" height="200"', prolog)) is None  # never expanded
    namespaced = b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg" width="7" height="9"/>'
    assert header_of_bytes(namespaced) == svg_header(7, 9)


def test_billion_laughs_is_neither_expanded_nor_slow() -> None:
    names = ["lol", *(f"lol{i}" for i in range(1, 10))]  # each ten of the one before
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY {name} "{f"&{previous};" * 10}">'
        for previous, name in zip(names, names[1:], strict=False)
    )
    prolog = f"<?xml version='1.0'?><!DOCTYPE lolz [{entities}]>"
    started = time.perf_counter()
    assert header_of_bytes(svg('width="&lol9;" height="&lol9;"', prolog)) is None
    assert header_of_bytes(svg('width="64" height="48"', prolog)) == svg_header(64, 48)
    assert time.perf_counter() - started < 0.5


def test_svg_facts_keep_the_declared_size_and_viewbox() -> None:
    facts = svg_facts(svg('width="2in" height="50%" viewBox="0 0 320 240"'))
    assert facts is not None
    assert (facts.width, facts.height, facts.view_box) == ("2in", "50%", (0.0, 0.0, 320.0, 240.0))
    assert facts.size == (144.0, 108.0)  # 50%: the viewBox's aspect from the 2in side
    assert svg_facts(svg('width="&w;" height="1"')) is None


def test_svgz_and_a_root_past_the_prefix_are_unreadable() -> None:
    import gzip

    assert header_of_bytes(gzip.compress(svg('width="10" height="10"'))) is None
    comment = b"<!--" + b"x" * SVG_PREFIX + b"-->"
    assert header_of_bytes(comment + svg('width="10" height="10"')) is None


# ---- PDF: every page's crop (else media) box in points, turned by /Rotate


HAND_PDF = pdf_of(
    [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 /MediaBox [0 0 600 400] >>",
        b"<< /Type /Page /Parent 2 0 R >>",  # the inherited media box
        b"<< /Type /Page /Parent 2 0 R /Rotate 90 >>",
        b"<< /Type /Pages /Parent 2 0 R /Kids [6 0 R] /Count 1 /Rotate 270"
        b" /MediaBox [0 0 500 700] >>",  # a nested node: both inherited by its page
        b"<< /Type /Page /Parent 5 0 R /CropBox [50 100 350 300] >>",
    ]
)


def test_pdf_pages_inherit_rotate_and_crop() -> None:
    expected = ((600, 400), (400, 600), (200, 300))  # crop 300x200, turned 270 degrees
    assert header_of_bytes(HAND_PDF) == Header("pdf", 600, 400, 3, expected, scalable=True)


def test_pdf_pages_from_pillow_at_their_resolution() -> None:
    first, second = gradient("RGB", (300, 200)), gradient("RGB", (150, 450))
    data = encode(first, "PDF", resolution=100.0, save_all=True, append_images=[second])
    pages = ((216, 144), (108, 324))  # pixels x 72 / 100 dpi
    assert header_of_bytes(data) == Header("pdf", 216, 144, 2, pages, scalable=True)
    assert header_of_bytes(b"junk before the marker\n" + data) == header_of_bytes(data)


def test_a_pdf_of_unknown_size_or_broken_is_unreadable() -> None:
    assert read_header(Counting(HAND_PDF, strict=False), None) is None  # no bound to read to
    assert header_of_bytes(b"%PDF-1.7\n" + bytes(500)) is None
    assert header_of_bytes(pdf_of([b"<< /Type /Catalog >>"])) is None  # no page tree


# ---- the corpus (real files made elsewhere), when present


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("thumbor-image.heic", Header("heif", 256, 256, 1)),
        ("jxl-isobmff.jxl", Header("jxl", 640, 416, 1)),
        ("imagor-sample.pdf", Header("pdf", 612, 792, 2, ((612, 792),) * 2, scalable=True)),
        ("imagor-test.svg", svg_header(620, 472)),
        ("circle.svg", svg_header(8, 8)),
    ],
)
def test_corpus_files(name: str, expected: Header) -> None:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {name} is absent")
    data = path.read_bytes()
    assert header_of_bytes(data) == expected
    if expected.format in ("heif", "jxl"):
        assert decoded_size(data) == (expected.width, expected.height)


# ---- truncated and corrupt files, and the budget


def _samples() -> dict[str, bytes]:
    im = gradient("RGB", (123, 45))
    return {
        "heif": encode(im, "HEIF"),
        "jxl": encode(im, "JXL"),
        "jxl-boxed": encode(im, "JXL", exif=exif_orientation(1)),
        "jp2": encode(im, "JPEG2000"),
        "j2k": encode(im, "JPEG2000", no_jp2=True),
        "svg": svg('width="123" height="45"', "<?xml version='1.0'?><!DOCTYPE svg>"),
        "pdf": HAND_PDF,
    }


@pytest.mark.parametrize("name", sorted(_samples()))
def test_truncated_and_corrupt_never_raise(name: str) -> None:
    whole_data = _samples()[name]
    whole = header_of_bytes(whole_data)
    assert whole is not None
    for cut in range(len(whole_data)):
        got = header_of_bytes(whole_data[:cut])
        assert got is None or got == whole, (cut, got)
        got = read_header(Counting(whole_data[:cut]), cut)  # strict ranged reads
        assert got is None or got == whole, (cut, got)
    for at in range(0, min(len(whole_data), 400)):  # one byte flipped: None or a size, no raise
        flipped = bytearray(whole_data)
        flipped[at] ^= 0xFF
        got = header_of_bytes(bytes(flipped))
        assert got is None or (got.width > 0 and got.height > 0 and got.frames > 0)


def test_the_budget_holds_on_large_files() -> None:
    noise = Image.effect_noise((800, 800), 90).convert("RGB")
    for fmt, kw in (("HEIF", {}), ("JXL", {}), ("JXL", {"exif": exif_orientation(1)})):
        data = encode(noise, fmt, **kw)
        assert len(data) > 100_000, (fmt, len(data))
        reader = Counting(data)
        assert read_header(reader, len(data)) == Header(fmt.lower(), 800, 800, 1)
        assert reader.bytes <= 16384, (fmt, reader.bytes)
    for no_jp2 in (False, True):
        data = encode(noise, "JPEG2000", no_jp2=no_jp2)
        reader = Counting(data)
        assert read_header(reader, len(data)) == Header("jp2", 800, 800, 1)
        assert reader.bytes <= 8192
    big_svg = svg('width="10" height="10"') + b"<!--" + b"x" * (8 << 20) + b"-->"
    reader = Counting(big_svg)
    assert read_header(reader, len(big_svg)) == svg_header(10, 10)
    assert reader.bytes <= SVG_PREFIX + 4096, reader.bytes
    reader = Counting(HAND_PDF)
    assert read_header(reader, len(HAND_PDF)) is not None
    assert reader.bytes <= len(HAND_PDF) + 4096 and reader.calls <= 2  # the whole, once


def test_a_pdf_whose_count_lies_has_the_pages_that_exist() -> None:
    lying = HAND_PDF.replace(b"/Count 3", b"/Count 9")
    assert header_of_bytes(lying) == header_of_bytes(HAND_PDF)
    import pypdfium2

    document = pypdfium2.PdfDocument(lying)  # PDFium believes the count, loads no such page
    assert len(document) == 9 and document.get_page(2) is not None
    with pytest.raises(pypdfium2.PdfiumError):
        document.get_page(3)
    document.close()
