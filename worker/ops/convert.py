"""convert: re-encode in another format. The runner encodes; this only names the format
and the quality (a step that states none leaves the pipeline's: worker/ops/pipeline.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.formats import ConvertJob
from jobs.spec import DEFAULT_QUALITY
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def convert(inputs: list[Picture], spec: ConvertJob, cfg: Settings) -> OpOutput:
    """The picture, now in `spec.format` (in a pipeline the last convert's format wins)."""
    return OpOutput(replace(inputs[0], format=spec.format), quality=spec.quality or DEFAULT_QUALITY)
