"""The pipeline spec: up to 10 single-image steps, each validated before any runs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from jobs.rasters import Raster, Stages, chain
from jobs.spec import ImageJob

MAX_STEPS = 10
# Fields that belong to the pipeline, not to its steps.
_PIPELINE_ONLY = ("input", "output", "inline", "webhook_url", "page", "animated")


class PipelineJob(ImageJob, tag="pipeline", kw_only=True):
    """Run `steps` (operation bodies without input/output) on one decode, one encode."""

    steps: Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=MAX_STEPS)]

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        from jobs.registry import pipeline_steps  # the registry imports this module

        def numbered(index: int, step: ImageJob) -> Stages:
            return lambda w, h: [
                (f"step {index}: {what}", size) for what, size in step.stages(w, h)
            ]

        return chain(
            inputs[0],
            [
                numbered(i, step)
                for i, step in enumerate(pipeline_steps(self))
                if isinstance(step, ImageJob)
            ],
        )


def step_body(step: dict[str, Any], index: int) -> dict[str, Any]:
    """A step as a full job body for validation (the pipeline supplies the input)."""
    for name in _PIPELINE_ONLY:
        if name in step:
            raise msgspec.ValidationError(
                f"`{name}` belongs to the pipeline, not to a step - at `$.steps[{index}].{name}`"
            )
    return {**step, "input": "pipeline"}
