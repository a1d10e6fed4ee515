"""Image operations: small pure functions `(inputs, spec, cfg) -> OpOutput`. No I/O here.

Operation `exif-strip` is `worker.ops.exif_strip:exif_strip` (the registry finds handlers by
that convention); `cfg` is the worker's Settings, for the limits an operation applies itself.

`inputs` are the decoded pictures of the spec's sources, in `spec.sources()` order (one for
most operations). Single-image operations usually transform `inputs[0]` frame by frame
with `Picture.map`, deciding geometry once from the first frame so animations stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.picture import Picture


@dataclass
class OpOutput:
    picture: Picture | None  # None: the result is facts only (no output object)
    fields: dict[str, Any] = field(default_factory=dict)  # merged into the job's result
    # overrides the spec's encode quality (pipeline steps); "auto": searched (worker/outputs.py)
    quality: int | str | None = None
