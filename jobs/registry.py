"""One registry drives everything: name -> spec, queue, billing rule, lazy handler.

The gateway, the worker's queues, billing, `GET /v1/operations` and the OpenAPI document
are all derived from `OPERATIONS`. Handlers are "module:function" strings so that the
gateway never imports Pillow, OpenCV, tesserocr or pyppeteer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

import msgspec

from billing.prices import BillingRule, PerMegapixel
from jobs.crop import CropJob
from jobs.spec import JobSpec

Queue = Literal["cpu", "ocr", "render"]
QUEUES: tuple[Queue, ...] = ("cpu", "ocr", "render")


@dataclass(frozen=True)
class Operation:
    name: str
    spec: type[JobSpec]
    queue: Queue
    billing: BillingRule
    handler: str  # "module:function", imported only by workers
    soft_time_limit: int = 60  # seconds: the job fails with TIMEOUT
    time_limit: int = 90  # seconds: the worker child is killed

    def load_handler(self) -> Callable[..., Any]:
        module, _, func = self.handler.partition(":")
        return getattr(importlib.import_module(module), func)


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("crop", CropJob, "cpu", PerMegapixel(), "worker.ops.crop:crop"),
    )
}

AnyJobSpec = Union[tuple(op.spec for op in OPERATIONS.values())]  # noqa: UP007


class _OperationProbe(msgspec.Struct):
    operation: str


_probe = msgspec.json.Decoder(_OperationProbe)
_decoder = msgspec.json.Decoder(AnyJobSpec)


def decode_spec(body: bytes) -> JobSpec:
    """Decode and validate a JSON job spec; raises msgspec.ValidationError naming the path."""
    name = _probe.decode(body).operation
    if name not in OPERATIONS:
        raise msgspec.ValidationError(
            f"unknown operation {name!r}; expected one of {', '.join(OPERATIONS)}"
            " - at `$.operation`"
        )
    return _decoder.decode(body)


def operation_of(spec: JobSpec) -> Operation:
    return OPERATIONS[spec.__struct_config__.tag]
