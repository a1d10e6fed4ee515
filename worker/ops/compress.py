"""compress: re-encode in the input's own format at a chosen quality."""

from __future__ import annotations

from jobs.formats import CompressJob
from worker.ops import OpOutput
from worker.picture import Picture


def compress(inputs: list[Picture], spec: CompressJob) -> OpOutput:
    """The picture unchanged; the runner re-encodes it at `spec.quality`."""
    return OpOutput(inputs[0], quality=spec.quality)
