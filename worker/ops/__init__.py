"""Image operations: small pure functions (image, spec) -> OpOutput. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class OpOutput:
    image: Image.Image
    fields: dict[str, Any] = field(default_factory=dict)  # merged into the job's result
