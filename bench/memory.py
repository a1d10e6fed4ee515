"""`python -m bench.memory`: each operation's peak memory per pixel of its largest raster.

Every case runs in a fresh interpreter (`--case NAME`): it builds synthetic inputs, runs the
operation once on a small copy (imports, OpenCV's first-call setup), resets the kernel's
peak-RSS mark (/proc/self/clear_refs), runs the operation on the full inputs and reads
VmHWM. Growth = VmHWM - VmRSS just before the call: the output (still held) and every
temporary, not the inputs. tracemalloc would miss numpy's and OpenCV's own allocations.
Bytes per pixel = growth / the largest raster (the biggest input or output frame, pixels).

    python -m bench.memory                 # every case at 16 MP, one table
    python -m bench.memory adjust blur     # only cases whose name contains a word
    python -m bench.memory --case adjust/rgba --mp 8   # one case here, JSON on stdout
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from imagefleet.settings import load_settings
from jobs.registry import OPERATIONS, decode_spec, example_body, operation_of
from worker.budget import BYTES_PER_PIXEL, FIXED_BYTES, SIXTEEN_BIT_EXTRA, allowed
from worker.picture import Picture

ROOT = Path(__file__).resolve().parent.parent
Shape = tuple[int, int, int]  # height, width, channels (a trailing 16 in names: uint16)


def cases(side: int) -> dict[str, tuple[dict[str, Any], list[Shape], Any]]:
    """name -> (job body, input shapes, dtype), sized so the largest raster is ~side^2."""
    out: dict[str, tuple[dict[str, Any], list[Shape], Any]] = {}
    square = {"rgb": 3, "rgba": 4}
    for name, op in OPERATIONS.items():
        if op.pipeline_step:
            for kind, ch in square.items():
                out[f"{name}/{kind}"] = (example_body(op), [(side, side, ch)], np.uint8)
    for kind, ch in square.items():
        out[f"composite/{kind}"] = (
            example_body(OPERATIONS["composite"]),
            [(side, side, ch), (side, side, 4)],
            np.uint8,
        )
        cell = (side - 110) // 10  # 10 x 10 cells, gap 10: the sheet is ~side^2
        sheet = {
            "operation": "contact-sheet",
            "files": ["photo.jpg"] * 100,
            "columns": 10,
            "cellWidth": cell,
            "cellHeight": cell,
        }
        out[f"contact-sheet/{kind}"] = (sheet, [(cell * 3 // 2, cell * 5 // 4, ch)] * 100, np.uint8)
        out[f"contact-sheet-up/{kind}"] = (sheet, [(48, 64, ch)] * 100, np.uint8)
        for analysis in ("dominant-color", "metadata"):
            out[f"{analysis}/{kind}"] = (
                example_body(OPERATIONS[analysis]),
                [(side, side, ch)],
                np.uint8,
            )
        quarter = side // 4
        out[f"resize-up/{kind}"] = (
            {"operation": "resize", "input": "a.png", "width": side, "height": side, "fit": "fill"},
            [(quarter, quarter, ch)],
            np.uint8,
        )
        margin = (side - quarter) // 2
        out[f"extend-up/{kind}"] = (
            {
                "operation": "extend",
                "input": "a.png",
                "top": margin,
                "bottom": margin,
                "left": margin,
                "right": margin,
            },
            [(quarter, quarter, ch)],
            np.uint8,
        )
        out[f"extend-mirror/{kind}"] = (
            {
                "operation": "extend",
                "input": "a.png",
                "top": margin,
                "bottom": margin,
                "left": margin,
                "right": margin,
                "extendWith": "mirror",
            },
            [(quarter, quarter, ch)],
            np.uint8,
        )
        diagonal = round(side / math.sqrt(2))
        out[f"rotate-45/{kind}"] = (
            {"operation": "rotate", "input": "a.png", "angle": 45},
            [(diagonal, diagonal, ch)],
            np.uint8,
        )
        out[f"rotate-7/{kind}"] = (
            {"operation": "rotate", "input": "a.png", "angle": 7},
            [(side * 7 // 8, side * 7 // 8, ch)],
            np.uint8,
        )
    out["crop-entropy/rgb"] = (
        {
            "operation": "crop",
            "input": "a.png",
            "gravity": "entropy",
            "width": side // 2,
            "height": side // 2,
        },
        [(side, side, 3)],
        np.uint8,
    )
    for name in ("adjust", "blur", "resize-up"):  # 16-bit: frames twice the bytes
        body, shapes, _ = out[f"{name}/rgba"]
        out[f"{name}/rgba16"] = (body, shapes, np.uint16)
    out["contact-sheet-1/rgba"] = (
        {
            **sheet,
            "files": ["photo.jpg"],
            "columns": 1,
            "cellWidth": side - 20,
            "cellHeight": side - 20,
        },
        [(quarter, quarter, 4)],
        np.uint8,
    )
    out["pipeline-up/rgba"] = (
        {
            "operation": "pipeline",
            "input": "a.png",
            "steps": [
                {"operation": "resize", "width": side, "height": side, "fit": "fill"},
                {"operation": "adjust", "brightness": 1.1, "saturation": 1.3},
            ],
        },
        [(2, 2, 4)],
        np.uint8,
    )
    groups = list(dict.fromkeys(name.split("/")[0] for name in out))
    return dict(sorted(out.items(), key=lambda item: groups.index(item[0].split("/")[0])))


def _frame(shape: Shape, dtype: Any, seed: int) -> np.ndarray:
    """Noise, built a block of rows at a time (no full-size temporaries)."""
    rng = np.random.default_rng(seed)
    frame = np.empty(shape, dtype)
    top = np.iinfo(dtype).max
    for y in range(0, shape[0], 256):
        block = frame[y : y + 256]
        block[...] = rng.integers(0, top, block.shape, dtype=dtype, endpoint=True)
    return frame


def _pictures(shapes: list[Shape], dtype: Any) -> list[Picture]:
    made: dict[Shape, np.ndarray] = {}  # equal shapes share one frame (ops never write inputs)
    for index, shape in enumerate(shapes):
        if shape not in made:
            made[shape] = _frame(shape, dtype, index)
    return [Picture(frames=[made[shape]], format="png") for shape in shapes]


def _status(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> bool:
    """VmHWM back down to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def measure(name: str, megapixels: float = 16.0) -> dict[str, Any]:
    """Run one case in this process (which should be fresh) and report its peak growth."""
    import cv2

    cv2.setNumThreads(1)  # as the worker pool children run
    side = round(math.sqrt(megapixels * 1e6))
    body, shapes, dtype = cases(side)[name]
    spec = decode_spec(json.dumps(body).encode())
    handler = operation_of(spec).load_handler()
    cfg = load_settings()  # the handlers' third argument
    small_body, small_shapes, _ = cases(1000)[name]
    handler(_pictures(small_shapes, dtype), decode_spec(json.dumps(small_body).encode()), cfg)
    inputs = _pictures(shapes, dtype)
    gc.collect()
    before = _status("VmRSS") if _reset_peak() else _status("VmHWM")
    output = handler(inputs, spec, cfg)
    growth = _status("VmHWM") - before
    frames = [f for p in inputs for f in p.frames]
    if output.picture is not None:
        frames += output.picture.frames
    largest = max(f.shape[0] * f.shape[1] for f in frames)
    out_shape = output.picture.first.shape if output.picture is not None else None
    return {
        "case": name,
        "operation": operation_of(spec).name,
        "inputs": sorted({f"{h}x{w}x{c}" for h, w, c in shapes}),
        "output": "x".join(map(str, out_shape)) if out_shape else "-",
        "largest_pixels": largest,
        "growth": growth,
        "bytes_per_pixel": round(growth / largest, 2),
    }


def run_case(name: str, megapixels: float = 16.0) -> dict[str, Any]:
    """`measure` in a fresh interpreter: nothing earlier in this process skews the peak."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--case", name, "--mp", str(megapixels)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"{name}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", help="only cases whose name contains one")
    parser.add_argument("--case", help="measure this one case in this process (JSON)")
    parser.add_argument("--mp", type=float, default=16.0, help="largest raster, megapixels")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.mp)))
        return
    names = [n for n in cases(4000) if not args.words or any(w in n for w in args.words)]
    print(
        f"peak RSS growth per pixel of the largest raster, ~{args.mp:g} MP, uint8 unless"
        f" '16'; allowed: budget x pixels + {FIXED_BYTES >> 20} MB (worker/budget.py)"
    )
    print(
        f"{'case':<22} {'input(s)':<22} {'output':<16} {'MP':>5} {'MB':>7} {'B/px':>6}"
        f" {'budget':>6}"
    )
    for name in names:
        r = run_case(name, args.mp)
        pixels, sixteen = r["largest_pixels"], name.endswith("16")
        budget = BYTES_PER_PIXEL[r["operation"]] + (SIXTEEN_BIT_EXTRA if sixteen else 0)
        flag = "" if r["growth"] <= allowed(r["operation"], pixels, sixteen) else "  OVER"
        print(
            f"{name:<22} {','.join(r['inputs'])[:22]:<22} {r['output']:<16}"
            f" {pixels / 1e6:5.1f} {r['growth'] / 2**20:7.0f} {r['bytes_per_pixel']:6.1f}"
            f" {budget:6g}{flag}",
            flush=True,
        )


if __name__ == "__main__":
    main()
