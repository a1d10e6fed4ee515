"""pipeline: up to 10 single-image steps on one decoded picture; one encode at the end."""

from __future__ import annotations

from typing import Any

from jobs.pipeline import PipelineJob
from jobs.registry import operation_of, pipeline_steps
from worker.cancel import checkpoint
from worker.ops import OpOutput
from worker.picture import Picture


def pipeline(inputs: list[Picture], spec: PipelineJob) -> OpOutput:
    picture = inputs[0]
    quality: int | None = None
    reports: list[dict[str, Any]] = []
    for body, step in zip(spec.steps, pipeline_steps(spec), strict=True):
        checkpoint()  # a canceled job stops between steps
        name = operation_of(step).name
        output = operation_of(step).load_handler()([picture], step)
        assert output.picture is not None  # pipeline steps always return an image
        picture = output.picture
        if "quality" in body:  # only a quality the step states overrides the pipeline's
            quality = output.quality
        reports.append(
            {"operation": name, "width": picture.width, "height": picture.height, **output.fields}
        )
    return OpOutput(picture, {"steps": reports}, quality)
