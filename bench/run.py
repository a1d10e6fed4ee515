"""`make bench`: prints a table and writes bench/results.json.

Part 1 runs in this process pinned to one core (libvips and OpenCV told to use one
thread), then part 1b decodes the formats of issue 16 on that core (bench/decode.py) and
part 1c measures format and quality auto on the corpus photos (bench/auto.py); parts 2-4
start a real local fleet on the machine's cores (with variants against separate jobs).
"""

from __future__ import annotations

import io
import json
import os
import platform
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bench import auto, decode, fleet, inprocess

HERE = Path(__file__).resolve().parent
CORPUS_PHOTO = HERE.parent.parent / "shared/corpus/images/2569067123_aca715a2ee_o.jpg"
TARGETS = {
    "resize_vs_pyvips": 1.25,
    "ssim": 0.98,
    "ssim_gap_vs_pyvips": 0.005,  # the resize's SSIM against Lanczos, below libvips' at most
    "crop_vs_pyvips": 1.0,
    "overhead": 0.15,
    "small_job_p50_ms": 15,
    "gateway_per_core": 1500,
}


def _photo() -> bytes:
    """sharp's benchmark input (2725x2225 JPEG), or a generated one of the same size."""
    if CORPUS_PHOTO.exists():
        return CORPUS_PHOTO.read_bytes()
    from tests.images import encode, photo_like

    return encode(photo_like(2725, 2225, seed=1), "JPEG", quality=90)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _line() -> bytes:
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 30)
    image = Image.new("RGB", (700, 60), "white")
    ImageDraw.Draw(image).text((10, 10), "The quick brown fox jumps over 1234", "black", font)
    return _png(image)


def print_decoding(decoding: dict[str, dict[str, object]]) -> None:
    print(f"\n{'decode, one core':34} {'fleet/s':>9} {'ref/s':>9} {'ratio':>7}  reference")
    for name, row in decoding.items():
        if "error" in row:
            print(f"{name:34} {'refused':>9} {'':9} {'':7}  ({row['error']})")
            continue
        sizes = (
            "" if row["fleet_size"] == row["reference_size"] else f" (fleet {row['fleet_size']})"
        )
        print(
            f"{name:34} {row['fleet_per_s']:9.1f} {row['reference_per_s']:9.1f}"
            f" {row['ratio']:6.2f}x  {row['reference']} {row['reference_size']}{sizes}"
        )


def main() -> None:
    photo = _photo()
    source = (
        f"{CORPUS_PHOTO.name} from the corpus"
        if CORPUS_PHOTO.exists()
        else "generated 2725x2225 JPEG (no ../shared corpus: smoother, so easier, than a photo)"
    )
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    print("part 1: in-process, one core ...", flush=True)
    single = inprocess.run(photo)
    print("part 1b: decoding HEIC, JPEG XL, JPEG 2000, SVG and PDF, one core ...", flush=True)
    decoding = decode.run()
    print("part 1c: format and quality auto on the corpus photos, one core ...", flush=True)
    choosing = auto.run()
    os.sched_setaffinity(0, cores)
    print("parts 2-4: through a local fleet ...", flush=True)
    pooled = fleet.run(photo, _png(Image.new("RGB", (16, 16), "white")), _line())

    resize = single["resize to 720 wide (jpeg q80)"]
    pooled_resize = pooled["resize"]
    overhead = pooled_resize["overhead"]
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {len(cores)} cores",
        "in_process_one_core": single,
        "decode_one_core": decoding,
        "auto_one_core": choosing,
        "fleet": pooled,
        "resize_overhead": round(overhead, 3),
        "targets": TARGETS,
        "input": source,
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nimagefleet bench ({results['machine']}, {results['when']})")
    print(f"input: {source}\n")
    print(f"{'in-process, one core':34} {'fleet/s':>9} {'pyvips/s':>9} {'ratio':>7}")
    for name, row in single.items():
        print(
            f"{name:34} {row['fleet_per_s']:9.1f} {row['pyvips_per_s']:9.1f} {row['ratio']:6.2f}x"
        )
    gap = resize["pyvips_ssim_vs_lanczos"] - resize["ssim_vs_lanczos"]
    print(
        f"{'resize SSIM vs Lanczos (fleet/vips)':34} {resize['ssim_vs_lanczos']:9.4f}"
        f" {resize['pyvips_ssim_vs_lanczos']:9.4f}  gap {gap:.4f}"
        f" (target <= {TARGETS['ssim_gap_vs_pyvips']})"
    )
    print_decoding(decoding)
    auto.print_rows(choosing)
    gateway = pooled["gateway"]
    variants = pooled["variants"]
    rows = [
        (
            "small job latency p50 / p99",
            f"{pooled['small_job_latency']['p50_ms']} ms /"
            f" {pooled['small_job_latency']['p99_ms']} ms",
            f"p50 <= {TARGETS['small_job_p50_ms']} ms",
        ),
        (
            "metadata of the 6 MP photo p50 / p99",
            f"{pooled['photo_metadata_latency']['p50_ms']} ms /"
            f" {pooled['photo_metadata_latency']['p99_ms']} ms",
            "p50 <= 10 ms (headers only)",
        ),
        (
            "resize, queue + storage CPU per job",
            f"{pooled_resize['worker_and_redis_ms']:.1f}"
            f" ms vs {pooled_resize['in_process_ms']:.1f} ms in process: overhead {overhead:.0%}",
            "overhead <= 15%",
        ),
        (
            "  the same, CPU against CPU",
            f"{pooled_resize['in_process_cpu_ms']:.1f} ms of one in-process resize's CPU:"
            f" overhead {pooled_resize['cpu_overhead']:.0%};"
            f" {pooled_resize['redis_commands_per_job']:.0f} Redis commands per job",
            "",
        ),
        (
            "resize jobs through the fleet",
            f"{pooled_resize['fleet_per_s']:.1f}/s vs"
            f" {pooled_resize['in_process_per_s']:.1f}/s in {pooled_resize['processes']}"
            f" processes ({pooled_resize['throughput_overhead']:.0%} lower)",
            "",
        ),
        (
            "  gateway CPU per resize job",
            f"{pooled_resize['gateway_ms']:.1f} ms (HTTP, admission, ?wait)",
            "",
        ),
        (
            "gateway submissions (1 process)",
            f"{gateway['submissions_per_s']}/s,"
            f" p99 {gateway['p99_ms']} ms; {gateway['per_gateway_cpu_second']}/s per"
            " gateway CPU-second",
            ">= 1500/s per core",
        ),
        (
            "  the same jobs with ?wait",
            f"{gateway['waited_per_gateway_cpu_second']}/s per gateway CPU-second"
            f" ({gateway['clients']} keep-alive clients, as above)",
            "no costlier than a submission",
        ),
        (
            "  the same jobs in batches",
            f"{gateway['batch_jobs_per_gateway_cpu_second']}/s per gateway CPU-second"
            f" (POST /v1/batches of {gateway['size']:.0f})",
            ">= 5000/s per core",
        ),
        (
            "  same server, empty /livez",
            f"{gateway['healthz_per_gateway_cpu_second']}/s per gateway CPU-second (the ceiling)",
            "",
        ),
        (
            "variants: 4 outputs, one job",
            f"{variants['variants_ms']} ms, workers' CPU {variants['variants_cpu_ms']} ms",
            "",
        ),
        (
            "  the same as 4 pipeline jobs",
            f"{variants['separate_ms']} ms, workers' CPU {variants['separate_cpu_ms']} ms",
            "",
        ),
        ("OCR one line, warm, in pool", f"{pooled['ocr_line_ms']} ms", ""),
        ("render 600x315 card, warm, in pool", f"{pooled['render_card_ms']} ms", ""),
    ]
    print()
    for name, value, target in rows:
        print(f"{name:36} {value:44} {target}")
    print(f"\nwritten to {HERE / 'results.json'}")


if __name__ == "__main__":
    main()
