"""Part 1b: decoding the formats users bring from phones, editors and scanners (HEIC, JPEG XL,
JPEG 2000, SVG and PDF pages), one core, in this process.

The fleet's side is the runner's own entry (`worker.inputs.decode_inputs` for a convert job
at the row's density), so the row shows what a job pays to get pixels. The reference is
measured in the same rounds: pyvips where the installed libvips reads the format (SVG, via
librsvg), else the library the fleet wraps, called directly (pillow-heif, pillow-jxl-plugin,
Pillow's OpenJPEG, PDFium through pypdfium2): those rows show the wrapper's overhead. The
inputs are generated here, so every clone measures the same thing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

os.environ["VIPS_CONCURRENCY"] = "1"  # before pyvips loads libvips

import numpy as np  # noqa: E402
import pillow_heif  # noqa: E402
import pillow_jxl  # noqa: E402
import pypdfium2  # noqa: E402
import pyvips  # noqa: E402
from PIL import Image  # noqa: E402

from bench.inprocess import compare  # noqa: E402
from imagefleet.settings import load_settings  # noqa: E402
from jobs.errors import FleetError  # noqa: E402
from jobs.formats import ConvertJob  # noqa: E402
from tests.images import pdf_of, photo_like, running_record  # noqa: E402
from worker.inputs import decode_inputs  # noqa: E402

CFG = load_settings()
PHOTO = (1024, 768)  # a phone photo scaled down: decode cost, not bandwidth, is measured


def _photo_bytes(save: Callable[[Image.Image, io.BytesIO], None]) -> bytes:
    out = io.BytesIO()
    save(Image.fromarray(photo_like(*PHOTO, seed=2)), out)
    return out.getvalue()


def heic() -> bytes:
    return _photo_bytes(lambda image, out: pillow_heif.from_pillow(image).save(out, quality=80))


def jxl() -> bytes:
    return _photo_bytes(lambda image, out: image.save(out, "JXL", quality=80))


def jp2() -> bytes:
    return _photo_bytes(
        lambda image, out: image.save(out, "JPEG2000", quality_mode="rates", quality_layers=[20])
    )


def svg() -> bytes:
    """A 620x472 illustration: gradients, curves, strokes and translucency, no text (fonts
    would measure the font stack, not the renderer)."""
    shapes = []
    for i in range(60):
        x, y, r = (i * 97) % 620, (i * 53) % 472, 8 + (i * 7) % 40
        shapes.append(
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="url(#g{i % 2})" fill-opacity="0.7"'
            f' stroke="#203040" stroke-width="{1 + i % 3}"/>'
        )
        shapes.append(
            f'<path d="M{x} {y} C {x + 40} {y - 60}, {x + 80} {y + 60}, {x + 120} {y}"'
            f' fill="none" stroke="hsl({i * 6},70%,40%)" stroke-width="3"/>'
        )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="620" height="472"'
        ' viewBox="0 0 620 472"><defs>'
        '<linearGradient id="g0"><stop offset="0" stop-color="#f80"/>'
        '<stop offset="1" stop-color="#08f"/></linearGradient>'
        '<radialGradient id="g1"><stop offset="0" stop-color="#fff"/>'
        '<stop offset="1" stop-color="#3a6"/></radialGradient></defs>'
        '<rect width="620" height="472" fill="#f4f1ea"/>' + "".join(shapes) + "</svg>"
    ).encode()


def pdf() -> bytes:
    """A one-page US Letter PDF (612x792 pt) of filled and stroked vector paths, written
    here object by object (no PDF library on the writing side)."""
    ops = []
    for i in range(200):
        x, y = 20 + (i * 37) % 560, 20 + (i * 61) % 740
        ops.append(f"{i % 7 / 7:.2f} {i % 5 / 5:.2f} {i % 3 / 3:.2f} rg {x} {y} 30 20 re f")
        ops.append(f"0 0 0 RG 1.5 w {x} {y} m {x + 25} {y + 60} {x + 50} {y - 40} {x + 80} {y} c S")
    content = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    return pdf_of(objects)


def fleet_decode(data: bytes, density: float | None = None) -> Callable[[], np.ndarray]:
    """The runner's decode of a convert job's input (header planning is not included)."""
    record = running_record(ConvertJob(input="in", format="png", density=density), "bench")
    return lambda: decode_inputs(record, [data], CFG)[0].first


def _vips_svg(data: bytes, dpi: float) -> Callable[[], np.ndarray]:
    def run() -> np.ndarray:
        image = pyvips.Image.new_from_buffer(data, "", dpi=dpi)
        return np.ndarray(
            buffer=image.write_to_memory(),
            dtype=np.uint8,
            shape=(image.height, image.width, image.bands),
        )

    return run


def _pdfium(data: bytes, dpi: float) -> Callable[[], np.ndarray]:
    def run() -> np.ndarray:
        document = pypdfium2.PdfDocument(data)
        try:
            return document[0].render(scale=dpi / 72).to_numpy()
        finally:
            document.close()

    return run


def _pillow(data: bytes) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _libjxl(data: bytes) -> Callable[[], np.ndarray]:
    decoder = pillow_jxl.Decoder()

    def run() -> np.ndarray:
        _, info, pixels, _, _ = decoder(data)
        return np.frombuffer(pixels, np.uint8).reshape(info.height, info.width, -1)

    return run


def rows() -> dict[str, tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], str]]:
    """name -> (fleet, reference, the reference's name)."""
    heic_data, jxl_data, jp2_data, svg_data, pdf_data = heic(), jxl(), jp2(), svg(), pdf()
    size = f"{PHOTO[0]}x{PHOTO[1]}"
    return {
        f"decode heic {size}": (
            fleet_decode(heic_data),
            lambda: np.asarray(pillow_heif.open_heif(heic_data)),
            "pillow-heif",
        ),
        f"decode jxl {size}": (fleet_decode(jxl_data), _libjxl(jxl_data), "libjxl"),
        f"decode jp2 {size}": (fleet_decode(jp2_data), _pillow(jp2_data), "Pillow"),
        "render svg 620x472 at 72 dpi": (fleet_decode(svg_data), _vips_svg(svg_data, 72), "vips"),
        "render svg at 300 dpi": (
            fleet_decode(svg_data, 300),
            _vips_svg(svg_data, 300),
            "vips",
        ),
        "render pdf page at 72 dpi": (fleet_decode(pdf_data), _pdfium(pdf_data, 72), "pdfium"),
        "render pdf page at 300 dpi": (
            fleet_decode(pdf_data, 300),
            _pdfium(pdf_data, 300),
            "pdfium",
        ),
    }


def run() -> dict[str, dict[str, object]]:
    """Each row: fleet and reference decodes per second, their ratio (above 1: the fleet is
    faster) and the pixel sizes each produced; a format the fleet refuses says so."""
    results: dict[str, dict[str, object]] = {}
    for name, (ours, theirs, reference) in rows().items():
        theirs_shape = theirs().shape[:2]
        try:
            ours_shape = ours().shape[:2]
        except FleetError as exc:
            results[name] = {"reference": reference, "error": str(exc.code), "message": exc.message}
            continue
        mine, ref, ratio = compare(ours, theirs, rounds=5, seconds=0.25)
        results[name] = {
            "reference": reference,
            "fleet_per_s": round(mine, 2),
            "reference_per_s": round(ref, 2),
            "ratio": round(ratio, 2),
            "fleet_size": f"{ours_shape[1]}x{ours_shape[0]}",
            "reference_size": f"{theirs_shape[1]}x{theirs_shape[0]}",
        }
    return results
