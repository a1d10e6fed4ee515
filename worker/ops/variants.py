"""variants: every variant's steps over the one decoded input, each encoded as it ends (so
only one variant's pictures are held at a time); the runner writes them all at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.variants import VariantsJob
from worker.cancel import checkpoint
from worker.ops.pipeline import run_steps
from worker.outputs import Encodings, Request, encode_output
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings


def variants(inputs: list[Picture], spec: VariantsJob, cfg: Settings) -> Encodings:
    encoded = []
    for index, variant in enumerate(spec.variants):
        made = run_steps(inputs[0], variant.steps, spec.step_jobs(index), cfg)
        assert made.picture is not None
        checkpoint()  # a canceled job stops between variants
        request = Request.of(variant, made.quality)
        one = encode_output(made.picture, request, cfg, variant.output)
        one.fields = made.fields  # the steps' reports (a crop's window, ...)
        encoded.append(one)
    return Encodings(None, encoded=encoded)
