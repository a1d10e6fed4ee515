"""`format: "auto"` and `quality: "auto"` on the corpus photos, one core, in process.

Per photo: JPEG at quality 85 (bytes, luma SSIM against the decoded source); auto at the
default target (format, quality, bytes, SSIM); auto with the target set to that JPEG's own
SSIM (the issue's comparison: fewer bytes at no lower SSIM); and the time of each search
against one encode of the chosen format at the chosen quality. SSIMs here are
scikit-image's when installed (independent of worker/quality.py), else ours.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagefleet.settings import load_settings
from worker import codec, quality
from worker.formats import ensure_plugins
from worker.outputs import Request, encode_output

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/images"
PHOTOS = [
    "2569067123_aca715a2ee_o.jpg",
    "Landscape_1.jpg",
    "Landscape_3.jpg",
    "Landscape_6.jpg",
    "Portrait_6.jpg",
    "4.webp",
    "face-kit_with_rose.jpg",
    "face-two_people.jpg",
]


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return quality.ssim(a, b)
    return float(
        structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


def _luma_of(payload: bytes) -> np.ndarray:
    ensure_plugins()
    with Image.open(io.BytesIO(payload)) as image:
        return quality.luma(np.asarray(image.convert("RGB"))).astype(np.float64)


def _timed(run: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = run()
    return value, (time.perf_counter() - started) * 1000


def photo_row(name: str) -> dict[str, Any]:
    cfg = load_settings({})
    picture = codec.decode((CORPUS / name).read_bytes(), codec.Limits())
    source = quality.luma(picture.first).astype(np.float64)
    jpeg = codec.encode(picture, "jpeg", 85, None)
    jpeg_ssim = _ssim(source, _luma_of(jpeg))
    row: dict[str, Any] = {
        "size": f"{picture.width}x{picture.height}",
        "jpeg85_bytes": len(jpeg),
        "jpeg85_ssim": round(jpeg_ssim, 4),
    }
    for label, target in (("default", None), ("at_jpeg85_ssim", min(0.999, jpeg_ssim))):
        request = Request("p", "auto", "auto", ssim=target)
        out, search_ms = _timed(lambda r=request: encode_output(picture, r, cfg, "x"))
        q = out.quality or 85
        _, one_ms = _timed(
            lambda o=out, q=q: codec.encode(
                picture, o.format, q, None, cfg.avif_speed, cfg.webp_method
            )
        )
        row[label] = {
            "format": out.format,
            "quality": out.quality,
            "bytes": len(out.payload),
            "vs_jpeg85": round(len(out.payload) / len(jpeg), 3),
            "ssim": round(_ssim(source, _luma_of(out.payload)), 4),
            "search_ms": round(search_ms),
            "one_encode_ms": round(one_ms, 1),
            "ratio": round(search_ms / one_ms, 1),
        }
    jpeg_only, ms = _timed(lambda: encode_output(picture, Request("p", "jpeg", "auto"), cfg, "x"))
    _, one = _timed(lambda: codec.encode(picture, "jpeg", jpeg_only.quality or 85, None))
    row["jpeg_auto"] = {
        "quality": jpeg_only.quality,
        "bytes": len(jpeg_only.payload),
        "search_ms": round(ms, 1),
        "ratio": round(ms / one, 1),
    }
    return row


def run() -> dict[str, dict[str, Any]]:
    return {name: photo_row(name) for name in PHOTOS if (CORPUS / name).exists()}


def print_rows(rows: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{'auto on corpus photos, one core':31} {'q85 JPEG':>15} "
        f"{'auto (SSIM 0.98)':>31} {'auto at q85 SSIM':>31}  search / one encode"
    )
    for name, row in rows.items():
        cells = [f"{row['jpeg85_bytes'] // 1000:6d}k {row['jpeg85_ssim']:.4f}"]
        for label in ("default", "at_jpeg85_ssim"):
            r = row[label]
            cells.append(
                f"{r['format']:>4} q{r['quality'] or '-':<3} {r['bytes'] // 1000:5d}k"
                f" {r['vs_jpeg85']:5.2f}x {r['ssim']:.4f}"
            )
        d, e = row["default"], row["at_jpeg85_ssim"]
        print(
            f"{name[:31]:31} {cells[0]:>15} {cells[1]:>31} {cells[2]:>31}"
            f"  {d['search_ms']} / {d['one_encode_ms']} ms = {d['ratio']}x;"
            f" {e['ratio']}x; jpeg only {row['jpeg_auto']['ratio']}x"
        )


if __name__ == "__main__":
    import os

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = run()
    print_rows(results)
