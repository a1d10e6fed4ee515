"""compress: re-encode in the input's own format at a chosen quality."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.formats import CompressJob
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def compress(inputs: list[Picture], spec: CompressJob, cfg: Settings) -> OpOutput:
    """The picture unchanged; the runner re-encodes it at `spec.quality`."""
    return OpOutput(inputs[0], quality=spec.quality)
