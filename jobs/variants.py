"""The variants spec: one input decoded once, many outputs, each a pipeline of its own.

Each variant names its output and how to encode it (`format` and `quality`, either `auto`)
and runs `steps` (pipeline steps: the same tagged union, validated up front with their path,
`$.variants[2].steps[0].width`) over the one decoded input. Billing: the input's megapixels
once per variant, plus every image the variants' steps create (the plan's `creates`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from jobs.declare import operation, step_union
from jobs.errors import ErrorCode, FleetError
from jobs.pipeline import MAX_STEPS
from jobs.pools import Pool
from jobs.rasters import Raster, Stages, chain
from jobs.spec import (
    DEFAULT_QUALITY,
    Color,
    FormatChoice,
    ImageJob,
    ObjectKey,
    OutputFormat,
    PipelineStep,
    QualityChoice,
    SsimTarget,
    TransformJob,
    choice_problem,
)

if TYPE_CHECKING:
    from jobs.policy import Policy

    Step = PipelineStep
else:
    Step = step_union()

MOST_VARIANTS = 256  # the schema's own bound, whatever the setting


class Variant(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One output of a variants job: its key, its encoding and the steps that make it."""

    output: ObjectKey
    format: FormatChoice | None = None  # None: the input's format
    quality: QualityChoice = DEFAULT_QUALITY
    accept: Annotated[list[OutputFormat], Meta(min_length=1)] | None = None
    ssim: SsimTarget | None = None
    background: Color | None = None  # what alpha is flattened on for JPEG (default white)
    steps: Annotated[list[Step], Meta(max_length=MAX_STEPS)] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        problem = choice_problem(self.output, self.format, self.quality, self.accept, self.ssim)
        if problem:
            message, field = problem
            raise ValueError(f"{message} (`{field}`)")


@operation(
    Pool.CPU,
    example={
        "variants": [
            {
                "output": "photo-320",
                "format": "auto",
                "quality": "auto",
                "steps": [{"operation": "resize", "width": 320, "fit": "inside"}],
            },
            {
                "output": "photo-640.webp",
                "format": "webp",
                "quality": 80,
                "steps": [{"operation": "resize", "width": 640, "fit": "inside"}],
            },
            {
                "output": "photo-sq.png",
                "format": "png",
                "steps": [{"operation": "resize", "width": 300, "height": 300}],
            },
        ]
    },
    soft_time_limit=120,
    time_limit=150,
)
class VariantsJob(ImageJob, tag="variants", kw_only=True):
    """Make every output of `variants` from one decode of the input: each variant is
    `output` (the key; with `format: auto` and no extension it gets the chosen format's),
    `format`, `quality`, `accept`, `ssim` (as for any output) and `steps` (pipeline steps,
    none to re-encode the input). `result.variants` lists, in order, each output's key,
    format, width, height, bytes and, where chosen, quality and SSIM. Billed the input's
    megapixels once per variant, plus the images the steps create. Up to
    `FLEET_MAX_VARIANTS` variants; all are written at the end, or none."""

    variants: Annotated[list[Variant], Meta(min_length=1, max_length=MOST_VARIANTS)]

    def admit(self, cfg: Policy) -> None:
        most = cfg.max_variants
        if len(self.variants) > most:
            raise FleetError(
                ErrorCode.VALIDATION_ERROR,
                f"{len(self.variants)} variants; at most {most} (FLEET_MAX_VARIANTS)"
                " - at `$.variants`",
            )

    def step_jobs(self, index: int) -> list[TransformJob]:
        """Variant `index`'s steps as job specs reading the input (their plan and handler)."""
        return [step.job(self.input) for step in self.variants[index].steps]

    def decode_scale(self, width: int, height: int) -> float:
        """The largest scale any variant's first step needs (a JPEG decodes once at 1/2,
        1/4 or 1/8 size when every variant starts by shrinking that far); 1 if any variant
        re-encodes the input as it is."""
        jobs = [self.step_jobs(i)[:1] for i in range(len(self.variants))]
        return max(job[0].decode_scale(width, height) if job else 1.0 for job in jobs)

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        made: list[tuple[str, Raster]] = []
        for index in range(len(self.variants)):

            def numbered(number: int, job: TransformJob, variant: int = index) -> Stages:
                return lambda w, h: [
                    (f"variant {variant}: step {number}: {what}", size)
                    for what, size in job.stages(w, h)
                ]

            steps = [numbered(i, job) for i, job in enumerate(self.step_jobs(index))]
            # Billed once per variant: each variant's steps read the whole input again.
            made.append((f"variant {index}: the input it reads", inputs[0]))
            made += chain(inputs[0], steps)
        return made
