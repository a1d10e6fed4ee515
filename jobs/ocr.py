"""The OCR spec: Tesseract on the `ocr` pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from msgspec import Meta

from jobs.declare import operation
from jobs.errors import ErrorCode, FleetError
from jobs.pools import Pool
from jobs.prices import Flat
from jobs.spec import ImageJob

if TYPE_CHECKING:
    from jobs.policy import Policy

LangSpec = Annotated[str, Meta(pattern=r"^[a-z_]{3,16}(\+[a-z_]{3,16}){0,4}$", max_length=90)]


@operation(
    Pool.OCR,
    Flat(3000),
    example={"input": "scan.png", "lang": "eng+deu", "tsv": True},
    soft_time_limit=120,
    time_limit=180,
)
class OcrJob(ImageJob, tag="ocr", kw_only=True):
    """Extract text with Tesseract (LSTM). `lang` is a roster language or `a+b` of several;
    every page of a multi-page TIFF is read (up to `FLEET_OCR_MAX_PAGES`). Result: `text`
    (pages joined by form feeds), `confidence` (mean word confidence 0-100), `words`, and
    `pages` (each with `page`, `text`, `confidence`, `words`, `rotation`: the clockwise
    degrees the page was found turned); with `tsv`, Tesseract's TSV (per-word boxes in the
    input's pixel coordinates, and confidences) as `tsv` and per page. Pages are
    denoised, flattened, upscaled, deskewed and turned upright only where that measurably
    helps (see tests/ocr_eval.py). No image is written, and every page is read, so no
    `output`, `format`, `quality`, `inline`, `page` or `animated`."""

    lang: LangSpec = "eng"
    tsv: bool = False
    psm: Annotated[int, Meta(ge=1, le=13)] = 3  # Tesseract page segmentation mode
    reads_all_pages: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.psm == 2:
            raise ValueError(
                "psm 2 (segmentation without OSD) is not implemented by Tesseract - at `$.psm`"
            )

    def languages(self) -> list[str]:
        return self.lang.split("+")

    def admit(self, cfg: Policy) -> None:
        missing = [lang for lang in self.languages() if lang not in cfg.ocr_langs]
        if missing:
            raise FleetError(
                ErrorCode.UNSUPPORTED_LANG,
                f"language {'+'.join(missing)!r} is not deployed; the roster is"
                f" {' '.join(cfg.ocr_langs)} (combine with `+`)",
            )
