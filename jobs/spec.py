"""The job-spec base: common fields, input sources and reusable constrained types.

Every operation's spec subclasses `JobSpec` (tagged by `operation`, unknown fields rejected).
Rules that span two fields live in `__post_init__`, whose message names the fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
PositiveU32 = Annotated[int, Meta(ge=1, le=2**32 - 1)]
UnitInterval = Annotated[float, Meta(ge=0.0, le=1.0)]
Quality = Annotated[int, Meta(ge=1, le=100)]
ObjectKey = Annotated[str, Meta(min_length=1, max_length=1024)]
OutputFormat = Literal["png", "jpeg", "webp", "avif"]


class InputRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`{"inline": "<base64>"}` (small inputs) or `{"inputKey": "..."}` (from an upload)."""

    inline: bytes | None = None
    input_key: ObjectKey | None = msgspec.field(default=None, name="inputKey")

    def __post_init__(self) -> None:
        if (self.inline is None) == (self.input_key is None):
            raise ValueError("give exactly one of `inline` or `inputKey`")


# A key in the caller's namespace ("photo.jpg"), inline bytes, or an upload's key. Never a URL.
InputSource = ObjectKey | InputRef


class JobSpec(msgspec.Struct, tag_field="operation", forbid_unknown_fields=True, kw_only=True):
    """Fields every job has."""

    output: ObjectKey | None = None
    inline: bool = False
    webhook_url: str | None = None


class ImageJob(JobSpec, kw_only=True):
    """A job that reads one input image and writes one output image."""

    input: InputSource
    format: OutputFormat | None = None
    quality: Quality = 85


def input_key_of(source: InputSource) -> str | None:
    """The object key an input source names, or None for inline bytes."""
    if isinstance(source, str):
        return source
    return source.input_key
