"""One registry drives everything: name -> spec, queue, billing rule, lazy handler.

The gateway, the worker's queues, billing, `GET /v1/operations`, the OpenAPI document and
the README's operation reference are all derived from `OPERATIONS`. Handlers are
"module:function" strings so that the gateway never imports Pillow, OpenCV, tesserocr or
pyppeteer.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

import msgspec

from jobs.analysis import DominantColorJob, MetadataJob
from jobs.compose import CompositeJob, ContactSheetJob
from jobs.crop import CropJob
from jobs.formats import CompressJob, ConvertJob, ExifStripJob
from jobs.geometry import ExtendJob, ResizeJob, RotateJob, TrimJob
from jobs.ocr import OcrJob
from jobs.pipeline import PipelineJob, step_body
from jobs.prices import BillingRule, Flat, PerMegapixel
from jobs.render import FromHtmlJob
from jobs.spec import JobSpec
from jobs.tone import AdjustJob, BlurJob, GrayscaleJob, SharpenJob

Queue = Literal["cpu", "ocr", "render"]
QUEUES: tuple[Queue, ...] = ("cpu", "ocr", "render")


@dataclass(frozen=True)
class Operation:
    name: str
    spec: type[JobSpec]
    queue: Queue
    billing: BillingRule
    handler: str  # "module:function", imported only by workers
    example: dict[str, Any]  # a runnable body for the docs (input "photo.jpg")
    pipeline_step: bool = False  # one image in, one image out: usable inside `pipeline`
    bills_all_inputs: bool = False  # megapixels of every input, not just the first
    soft_time_limit: int = 60  # seconds: the job fails with TIMEOUT
    time_limit: int = 90  # seconds: the worker child is killed

    def load_handler(self) -> Callable[..., Any]:
        module, _, func = self.handler.partition(":")
        return getattr(importlib.import_module(module), func)


def _cpu(
    name: str,
    spec: type[JobSpec],
    module: str,
    example: dict[str, Any],
    billing: BillingRule | None = None,
    step: bool = True,
) -> Operation:
    return Operation(
        name,
        spec,
        "cpu",
        billing or PerMegapixel(),
        f"worker.ops.{module}:{module}",
        example,
        pipeline_step=step,
    )


def example_body(op: Operation) -> dict[str, Any]:
    """The operation's documented example as a full job body (input `photo.jpg` by default)."""
    takes_input = any(f.name == "input" for f in msgspec.structs.fields(op.spec))
    default = {"input": "photo.jpg"} if takes_input and "input" not in op.example else {}
    return {"operation": op.name, **default, **op.example}


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        _cpu(
            "crop",
            CropJob,
            "crop",
            {
                "rect": {"x": 100, "y": 50, "width": 800, "height": 600},
                "format": "jpeg",
                "quality": 90,
            },
        ),
        _cpu("resize", ResizeJob, "resize", {"width": 720, "fit": "inside"}),
        _cpu("convert", ConvertJob, "convert", {"format": "webp", "quality": 82}),
        _cpu("compress", CompressJob, "compress", {"quality": 70}),
        _cpu("rotate", RotateJob, "rotate", {"angle": 90}),
        _cpu("blur", BlurJob, "blur", {"sigma": 3}),
        _cpu("sharpen", SharpenJob, "sharpen", {"sigma": 1.5}),
        _cpu("grayscale", GrayscaleJob, "grayscale", {}),
        _cpu("exif-strip", ExifStripJob, "exif_strip", {}),
        _cpu(
            "composite",
            CompositeJob,
            "composite",
            {"overlay": "logo.png", "gravity": "southeast", "opacity": 0.8},
            step=False,
        ),
        replace(
            _cpu(
                "contact-sheet",
                ContactSheetJob,
                "contact_sheet",
                {
                    "files": ["photo.jpg", "logo.png"],
                    "columns": 2,
                    "cellWidth": 240,
                    "cellHeight": 180,
                },
                step=False,
            ),
            bills_all_inputs=True,
        ),
        _cpu(
            "adjust",
            AdjustJob,
            "adjust",
            {"brightness": 1.1, "saturation": 1.3, "tint": {"r": 255, "g": 240, "b": 200}},
        ),
        _cpu("trim", TrimJob, "trim", {"threshold": 10}),
        _cpu("extend", ExtendJob, "extend", {"top": 40, "bottom": 40, "background": "#ffffff"}),
        _cpu("metadata", MetadataJob, "metadata", {}, billing=Flat(500), step=False),
        _cpu(
            "dominant-color", DominantColorJob, "dominant_color", {}, billing=Flat(200), step=False
        ),
        _cpu(
            "pipeline",
            PipelineJob,
            "pipeline",
            {
                "steps": [
                    {"operation": "resize", "width": 800, "fit": "inside"},
                    {"operation": "sharpen"},
                    {"operation": "convert", "format": "webp"},
                ]
            },
            step=False,
        ),
        Operation(
            "ocr",
            OcrJob,
            "ocr",
            Flat(3000),
            "worker.ops.ocr:ocr",
            {"input": "scan.png", "lang": "eng+deu", "tsv": True},
            soft_time_limit=120,
            time_limit=180,
        ),
        Operation(
            "from-html",
            FromHtmlJob,
            "render",
            Flat(3000),
            "worker.ops.from_html:from_html",
            {
                "html": '<div style="font:48px sans-serif;padding:40px">Hello</div>',
                "type": "png",
                "fullPage": True,
            },
            soft_time_limit=30,
            time_limit=60,
        ),
    )
}

AnyJobSpec = Union[tuple(op.spec for op in OPERATIONS.values())]  # noqa: UP007


class _OperationProbe(msgspec.Struct):
    operation: str


_probe = msgspec.json.Decoder(_OperationProbe)
_decoder = msgspec.json.Decoder(AnyJobSpec)
_PATH = re.compile(r" - at `\$(?P<rest>[^`]*)`$")


def _known(name: str, path: str) -> None:
    if name not in OPERATIONS:
        raise msgspec.ValidationError(
            f"unknown operation {name!r}; expected one of {', '.join(OPERATIONS)} - at `{path}`"
        )


def pipeline_steps(spec: PipelineJob) -> list[JobSpec]:
    """Every step of a pipeline as a validated spec; errors name `$.steps[i]...`."""
    steps = []
    for index, step in enumerate(spec.steps):
        where = f"$.steps[{index}]"
        body = step_body(step, index)
        name = body.get("operation")
        if not isinstance(name, str):
            raise msgspec.ValidationError(f"each step needs an `operation` - at `{where}`")
        _known(name, f"{where}.operation")
        if not OPERATIONS[name].pipeline_step:
            allowed = ", ".join(n for n, op in OPERATIONS.items() if op.pipeline_step)
            raise msgspec.ValidationError(
                f"{name!r} cannot be a pipeline step; steps are one of {allowed}"
                f" - at `{where}.operation`"
            )
        try:
            steps.append(_decoder.decode(msgspec.json.encode(body)))
        except msgspec.ValidationError as exc:
            message = str(exc)
            match = _PATH.search(message)
            if match:
                message = message[: match.start()] + f" - at `{where}{match['rest']}`"
            else:
                message += f" - at `{where}`"
            raise msgspec.ValidationError(message) from None
    return steps


def decode_spec(body: bytes) -> JobSpec:
    """Decode and validate a JSON job spec; raises msgspec.ValidationError naming the path."""
    try:
        _known(_probe.decode(body).operation, "$.operation")
        spec = _decoder.decode(body)
    except RecursionError:  # msgspec gives up on very deep nesting: the caller's mistake
        raise msgspec.ValidationError("the JSON is nested too deeply - at `$`") from None
    if isinstance(spec, PipelineJob):
        pipeline_steps(spec)
    return spec


def operation_of(spec: JobSpec) -> Operation:
    return OPERATIONS[spec.__struct_config__.tag]
