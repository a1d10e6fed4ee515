"""convert: re-encode in another format. The runner encodes; this only names the format."""

from __future__ import annotations

from dataclasses import replace

from jobs.formats import ConvertJob
from worker.ops import OpOutput
from worker.picture import Picture


def convert(inputs: list[Picture], spec: ConvertJob) -> OpOutput:
    """The picture, now in `spec.format` (in a pipeline the last convert's format wins)."""
    return OpOutput(replace(inputs[0], format=spec.format), quality=spec.quality)
