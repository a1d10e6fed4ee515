"""A small multi-language OCR evaluation set, generated in code, and its measurements.

Every roster language gets three real sentences rendered black on white at 30 px
(DejaVu Sans; Noto Sans CJK SC for chi_sim). Harder cases, each aimed at one
preprocessing step of worker/ops/ocr.py: the English page turned 90, 180 and 270 degrees
with no EXIF (only orientation detection can fix it), low-resolution text (English at
11 px, Chinese at 10 px), a 3 and a -5 degree skew, inverted colours, and poor scans
(noise, low contrast, a shadow across the page).

    .venv/bin/python -m tests.ocr_eval          # CER per preprocessing variant + latency
    .venv/bin/python -m tests.ocr_eval --quick  # CER with the default steps only
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imagefleet.settings import settings
from jobs.ocr import OcrJob
from worker import ocr_prep, tesseract
from worker.ops import ocr as ocr_op
from worker.picture import Picture

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NOTO_CJK = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
NOTO_CJK_SC = 2  # face index of Simplified Chinese in the collection

SENTENCES: dict[str, list[str]] = {
    "eng": [
        "The quick brown fox jumps over the lazy dog.",
        "Please send the signed invoice to our office by Friday.",
        "Weather today: sunny, with a light breeze from the west.",
    ],
    "spa": [
        "El niño comió una manzana en el jardín.",
        "¿Dónde está la estación de tren más cercana?",
        "Mañana será un día soleado y tranquilo.",
    ],
    "fra": [
        "Le garçon a mangé une pomme près de la fenêtre.",
        "Où se trouve la bibliothèque municipale ?",
        "Nous avons déjà réservé une chambre pour cet été.",
    ],
    "deu": [
        "Die Bäume im Garten blühen dieses Jahr früh.",
        "Größere Städte haben öffentliche Verkehrsmittel.",
        "Über die Brücke fährt ein weißer Zug.",
    ],
    "ita": [
        "La città è molto bella in primavera.",
        "Perché non andiamo al mercato più tardi?",
        "Il caffè è già pronto sul tavolo.",
    ],
    "por": [
        "A criança está na praça com o cão.",
        "Não há informação sobre a reunião de amanhã.",
        "Você já comeu pão com manteiga hoje?",
    ],
    "nld": [
        "De kinderen spelen buiten in de tuin.",
        "Ze gaan één keer per week naar het café.",
        "Hij heeft een brief naar zijn oma geschreven.",
    ],
    "pol": [
        "Zażółć gęślą jaźń, mówi nauczyciel.",
        "Dziś jest piękny, słoneczny dzień.",
        "Wszyscy uczniowie poszli już do szkoły.",
    ],
    "rus": [
        "Съешь же ещё этих мягких французских булок.",
        "Сегодня в Москве хорошая погода.",
        "Мы читаем очень интересную книгу.",
    ],
    "chi_sim": [
        "今天天气很好，我们去公园散步。",
        "这本书非常有意思，我已经看完了。",
        "请把文件发到我的电子邮箱。",
    ],
}


@dataclass(frozen=True)
class Sample:
    name: str
    lang: str
    frame: np.ndarray  # HxWx3 uint8
    reference: str  # lines joined by "\n"


def font_for(lang: str, size: int) -> ImageFont.FreeTypeFont:
    if lang == "chi_sim":
        return ImageFont.truetype(NOTO_CJK, size, index=NOTO_CJK_SC)
    return ImageFont.truetype(DEJAVU, size)


def render(lines: list[str], lang: str = "eng", size: int = 30) -> np.ndarray:
    """Black text on white, one line per entry, with a margin: an RGB uint8 array."""
    font = font_for(lang, size)
    margin, spacing = max(10, size), int(size * 0.6)
    widths = [int(font.getlength(line)) for line in lines]
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    width = max(widths) + 2 * margin
    height = len(lines) * line_h + (len(lines) - 1) * spacing + 2 * margin
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * (line_h + spacing)), line, font=font, fill="black")
    return np.asarray(image).copy()


def skewed(frame: np.ndarray, degrees: float) -> np.ndarray:
    h, w = frame.shape[:2]
    pad = int(0.1 * max(h, w))
    frame = cv2.copyMakeBorder(
        frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(255, 255, 255)
    )
    h, w = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_CUBIC, borderValue=(255, 255, 255))


def scan_like(
    frame: np.ndarray, noise: float, contrast: float, ramp: float, seed: int = 11
) -> np.ndarray:
    """A poor scan: ink `contrast` levels below grey paper that darkens by `ramp` levels
    across the page (a shadow), slightly blurred, with Gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    grey: np.ndarray = frame[:, :, 0].astype(np.float32)  # float32 until the final rounding
    shadow = np.linspace(0, ramp, grey.shape[1], dtype=np.float32)[None, :]
    grey = 205 - (255 - grey) / 255 * contrast - shadow
    grey = cv2.GaussianBlur(grey, (0, 0), 0.9)
    grey += rng.normal(0, noise, grey.shape).astype(np.float32) if noise else 0
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def samples() -> list[Sample]:
    out = [
        Sample(lang, lang, render(lines, lang), "\n".join(lines))
        for lang, lines in SENTENCES.items()
    ]
    eng = SENTENCES["eng"]
    page = render(eng)
    reference = "\n".join(eng)
    out += [
        # np.rot90(k=-1): turned 90 degrees clockwise; no EXIF tag says so.
        Sample("eng-rot90", "eng", np.ascontiguousarray(np.rot90(page, -1)), reference),
        Sample("eng-rot180", "eng", np.ascontiguousarray(np.rot90(page, 2)), reference),
        Sample("eng-rot270", "eng", np.ascontiguousarray(np.rot90(page, 1)), reference),
        Sample("eng-small11", "eng", render(eng, size=11), reference),
        Sample(
            "chi_sim-small10",
            "chi_sim",
            render(SENTENCES["chi_sim"], "chi_sim", 10),
            "\n".join(SENTENCES["chi_sim"]),
        ),
        Sample("eng-skew3", "eng", skewed(page, 3.0), reference),
        Sample("eng-skew-5", "eng", skewed(page, -5.0), reference),
        Sample("eng-inverted", "eng", 255 - page, reference),
        Sample("eng-noisy", "eng", scan_like(render(eng, size=24), 15, 110, 40), reference),
        Sample("eng-shadow", "eng", scan_like(page, 0, 70, 130), reference),
        Sample(
            "deu-noisy",
            "deu",
            scan_like(render(SENTENCES["deu"], "deu", 28), 20, 100, 50),
            "\n".join(SENTENCES["deu"]),
        ),
    ]
    return out


# --- character error rate ------------------------------------------------------------

_CJK_SPACE = str.maketrans("", "", " ")


def normalise(text: str, lang: str = "eng") -> str:
    """NFC, whitespace runs collapsed to one space (lines too), trimmed; for Chinese, no
    spaces at all (Tesseract puts spaces between CJK characters) and full-width
    punctuation folded (NFKC)."""
    text = unicodedata.normalize("NFKC" if lang == "chi_sim" else "NFC", text)
    text = " ".join(text.split())
    return text.translate(_CJK_SPACE) if lang == "chi_sim" else text


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(hypothesis: str, reference: str, lang: str = "eng") -> float:
    ref = normalise(reference, lang)
    return levenshtein(normalise(hypothesis, lang), ref) / max(1, len(ref))


# --- running -------------------------------------------------------------------------


def spec_for(lang: str, psm: int = 3, tsv: bool = False) -> OcrJob:
    return OcrJob(input="eval.png", lang=lang, psm=psm, tsv=tsv)


def run(sample: Sample, steps: ocr_prep.Preprocess = ocr_prep.DEFAULT) -> dict:
    picture = Picture(frames=[sample.frame], format="png")
    return ocr_op.read_picture(picture, spec_for(sample.lang), steps)


def evaluate(
    steps: ocr_prep.Preprocess = ocr_prep.DEFAULT, only: list[Sample] | None = None
) -> dict[str, float]:
    """CER per sample name through the handler's code path with these steps."""
    return {
        s.name: cer(run(s, steps)["text"], s.reference, s.lang)
        for s in (only if only is not None else samples())
    }


def _engine_only(frame: np.ndarray, psm: int) -> dict[str, object]:
    """Tesseract on the plain grey page: no preprocessing, no handler around it."""
    return tesseract.recognise(Image.fromarray(ocr_prep.to_grey(frame)), "eng", psm)


def timed(action: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time in ms of `repeat` calls (after one warm-up call)."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cli_ms(frame: np.ndarray, lang: str, repeat: int = 3) -> float:
    """A fresh `tesseract` process per image (what shelling out per job costs)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.png"
        Image.fromarray(frame).save(path)
        command = [
            "tesseract",
            str(path),
            "-",
            "-l",
            lang,
            "--tessdata-dir",
            settings().tessdata_dir,
        ]
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

        def once() -> None:
            subprocess.run(command, check=True, capture_output=True, env=env)

        return timed(once, repeat)


def cli_text(frame: np.ndarray, lang: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.png"
        Image.fromarray(frame).save(path)
        done = subprocess.run(
            ["tesseract", str(path), "-", "-l", lang, "--tessdata-dir", settings().tessdata_dir],
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
        return done.stdout.decode()


def full_page() -> np.ndarray:
    """A letter page at 200 dpi (1700x2200) with 36 lines of 28 px English text."""
    lines = [" ".join(SENTENCES["eng"][i % 3].split()[:9]) for i in range(36)]
    text = render(lines, size=28)
    page = np.full((2200, 1700, 3), 255, np.uint8)
    h, w = min(text.shape[0], 2100), min(text.shape[1], 1600)
    page[50 : 50 + h, 50 : 50 + w] = text[:h, :w]
    return page


NONE = ocr_prep.Preprocess(
    denoise=False, flatten=False, upscale=False, orient=False, deskew=False, binarise=False
)
VARIANTS: dict[str, ocr_prep.Preprocess] = {
    "none": NONE,
    "default": ocr_prep.DEFAULT,
    **{
        f"-{step}": replace(ocr_prep.DEFAULT, **{step: False})
        for step in ("denoise", "flatten", "upscale", "orient", "deskew")
    },
    **{
        f"only {step}": replace(NONE, **{step: True})
        for step in ("denoise", "flatten", "upscale", "orient", "deskew")
    },
    "+binarise": replace(ocr_prep.DEFAULT, binarise=True),
    "only binarise": replace(NONE, binarise=True),
}


def main(argv: list[str]) -> None:
    cases = samples()
    variants = {"default": ocr_prep.DEFAULT} if "--quick" in argv else VARIANTS
    table = {name: evaluate(steps, cases) for name, steps in variants.items()}
    names = list(table)
    print("CER per sample (lower is better)")
    print(f"{'sample':<16}" + "".join(f"{n:>{max(7, len(n) + 1)}}" for n in names))
    for s in cases:
        print(
            f"{s.name:<16}" + "".join(f"{table[n][s.name]:>{max(7, len(n) + 1)}.3f}" for n in names)
        )
    for n in names:
        values = list(table[n].values())
        print(f"  {n}: mean CER {statistics.mean(values):.4f}")
    if "--quick" in argv:
        return

    print(
        "\nLatency, ms (median of 5 warm runs; CLI: median of 3 fresh processes,"
        " OMP_THREAD_LIMIT=1)"
    )
    print(f"{'sample':<16}{'size':>11}{'handler':>10}{'no prep':>10}{'CLI':>9}{'CLI CER':>9}")
    for s in cases:
        picture = Picture(frames=[s.frame], format="png")
        spec = spec_for(s.lang)
        warm = timed(partial(ocr_op.read_picture, picture, spec))
        bare = timed(partial(ocr_op.read_picture, picture, spec, NONE))
        cli = cli_ms(s.frame, s.lang)
        size = f"{s.frame.shape[1]}x{s.frame.shape[0]}"
        cli_cer = cer(cli_text(s.frame, s.lang), s.reference, s.lang)
        print(f"{s.name:<16}{size:>11}{warm:>10.1f}{bare:>10.1f}{cli:>9.1f}{cli_cer:>9.3f}")

    line = render([SENTENCES["eng"][1]])
    page = full_page()
    line_spec, page_spec = spec_for("eng", psm=7), spec_for("eng")
    print("\nPer-line / per-page (eng)")
    for label, frame, spec in (
        ("line, psm 7", line, line_spec),
        ("line, psm 3", line, spec_for("eng")),
        ("page 1700x2200", page, page_spec),
    ):
        picture = Picture(frames=[frame], format="png")
        handler = timed(partial(ocr_op.read_picture, picture, spec))
        engine = timed(partial(_engine_only, frame, spec.psm))
        cli = cli_ms(frame, "eng")
        print(f"  {label:<16} handler {handler:7.1f}  engine only {engine:7.1f}  CLI {cli:7.1f}")
    tesseract.clear_cache()
    started = time.perf_counter()
    tesseract.api_for("eng")
    print(f"  engine init (eng): {(time.perf_counter() - started) * 1000:.0f} ms")
    started = time.perf_counter()
    ocr_prep.orient(ocr_prep.to_grey(page))
    print(f"  OSD first call incl. init (page): {(time.perf_counter() - started) * 1000:.0f} ms")
    print(f"  OSD warm (page): {timed(lambda: ocr_prep.orient(ocr_prep.to_grey(page))):.0f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
