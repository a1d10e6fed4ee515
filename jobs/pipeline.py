"""The pipeline spec: up to 10 single-image steps, each validated before any runs.

A step is a step operation's spec without the fields the pipeline has (`input`, `output`,
`page`, ...): one struct per operation declared `step=True`, derived from its spec
(jobs/operation.py), all in one tagged union, so msgspec validates every step and names its
path (`$.steps[1].sigma`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from jobs.declare import operation, step_union
from jobs.pools import Pool
from jobs.rasters import Raster, Stages, chain
from jobs.spec import PipelineStep, TransformJob

MAX_STEPS = 10

if TYPE_CHECKING:  # the checker sees the base class; msgspec decodes the tagged union
    Step = PipelineStep
else:
    Step = step_union()


@operation(
    Pool.CPU,
    example={
        "steps": [
            {"operation": "resize", "width": 800, "fit": "inside"},
            {"operation": "sharpen"},
            {"operation": "convert", "format": "webp"},
        ]
    },
)
class PipelineJob(TransformJob, tag="pipeline", kw_only=True):
    """Run `steps` (operation bodies without input/output) on one decode, one encode."""

    steps: Annotated[list[Step], Meta(min_length=1, max_length=MAX_STEPS)]

    def step_jobs(self) -> list[TransformJob]:
        """Every step as a job spec reading the pipeline's input (for its plan and handler)."""
        return [step.job(self.input) for step in self.steps]

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        def numbered(index: int, step: TransformJob) -> Stages:
            return lambda w, h: [
                (f"step {index}: {what}", size) for what, size in step.stages(w, h)
            ]

        return chain(inputs[0], [numbered(i, job) for i, job in enumerate(self.step_jobs())])


def step(operation: str, **fields: Any) -> PipelineStep:
    """A validated step from its JSON fields: `step("resize", width=800, fit="inside")`."""
    return msgspec.convert({"operation": operation, **fields}, Step)
