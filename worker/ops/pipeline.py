"""pipeline: up to 10 single-image steps on one decoded picture; one encode at the end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobs.pipeline import PipelineJob
from jobs.registry import operation_of
from jobs.spec import PipelineStep, TransformJob
from worker.cancel import checkpoint
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def run_steps(
    picture: Picture, steps: Sequence[PipelineStep], jobs: list[TransformJob], cfg: Settings
) -> OpOutput:
    """The steps, one after another, from `picture` (a pipeline's, or a variant's)."""
    quality: int | None = None
    reports: list[dict[str, Any]] = []
    for step, job in zip(steps, jobs, strict=True):
        checkpoint()  # a canceled job stops between steps
        op = operation_of(step)
        output = op.load_handler()([picture], job, cfg)
        assert output.picture is not None  # pipeline steps always return an image
        picture = output.picture
        # Only a quality the step states (compress's, a convert's given one) overrides
        # the pipeline's.
        if getattr(step, "quality", None) is not None:
            quality = output.quality
        reports.append(
            {
                "operation": op.name,
                "width": picture.width,
                "height": picture.height,
                **output.fields,
            }
        )
    return OpOutput(picture, {"steps": reports}, quality)


def pipeline(inputs: list[Picture], spec: PipelineJob, cfg: Settings) -> OpOutput:
    return run_steps(inputs[0], spec.steps, spec.step_jobs(), cfg)
