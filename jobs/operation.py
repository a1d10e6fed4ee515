"""What an operation is besides its spec's fields: the worker pool it runs on, its price
rule, a runnable example (for the docs and the tests), whether it can be a `pipeline` step,
its time limits. Declared on the spec (`@operation(...)`, jobs/declare.py).

Its handler is found by convention: operation `exif-strip` runs
`worker.ops.exif_strip:exif_strip(inputs, spec, cfg)`, imported only by workers (so the
gateway never imports Pillow, OpenCV, tesserocr or pyppeteer).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.pools import Pool
from jobs.prices import BillingRule

if TYPE_CHECKING:
    from jobs.spec import JobSpec, PipelineStep


@dataclass(frozen=True)
class Operation:
    name: str  # the spec's tag: the `operation` of a job body
    spec: type[JobSpec]
    queue: Pool
    billing: BillingRule
    example: dict[str, Any]  # a runnable body for the docs (input "photo.jpg" by default)
    pipeline_step: bool = False  # one image in, one image out: usable inside `pipeline`
    bills_all_inputs: bool = False  # megapixels of every input, not just the first
    soft_time_limit: int = 60  # seconds: the job fails with TIMEOUT
    time_limit: int = 90  # seconds: the worker child is killed
    # The spec without the pipeline's fields (input, output, ...), if `pipeline_step`.
    step: type[PipelineStep] | None = field(default=None, compare=False)

    @property
    def handler(self) -> str:
        """`module:function` of the handler, by convention from the name."""
        module = self.name.replace("-", "_")
        return f"worker.ops.{module}:{module}"

    def load_handler(self) -> Callable[..., Any]:
        module, _, func = self.handler.partition(":")
        return getattr(importlib.import_module(module), func)
