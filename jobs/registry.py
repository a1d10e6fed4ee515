"""The registry: every operation declared in `jobs` (an `@operation(...)` on its spec).

The gateway, the worker pools, billing, `GET /v1/operations`, the OpenAPI document, the
client's named methods and docs/operations.md all read `OPERATIONS`, which lists the
operations by name (alphabetical: no hand-kept order to maintain). Adding an operation is
its spec, with its declaration, in a `jobs` module, and its handler in `worker.ops`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import msgspec

from jobs.declare import declared_operations
from jobs.operation import Operation
from jobs.spec import ImageJob, JobSpec, PipelineStep

__all__ = [
    "OPERATIONS",
    "STEPS",
    "AnyJobSpec",
    "Operation",
    "decode_spec",
    "example_body",
    "operation_of",
]

OPERATIONS: dict[str, Operation] = {op.name: op for op in declared_operations()}
STEPS = [name for name, op in OPERATIONS.items() if op.pipeline_step]

if TYPE_CHECKING:  # the checker sees the base class; msgspec decodes the tagged union
    AnyJobSpec = JobSpec
else:
    AnyJobSpec = Union[tuple(op.spec for op in OPERATIONS.values())]  # noqa: UP007


def example_body(op: Operation) -> dict[str, Any]:
    """The operation's documented example as a full job body (input `photo.jpg` by default)."""
    default = {"input": "photo.jpg"} if issubclass(op.spec, ImageJob) else {}
    return {"operation": op.name, **default, **op.example}


class _Named(msgspec.Struct):
    operation: str


class _Probe(msgspec.Struct):
    operation: str
    steps: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: none given


_probe = msgspec.json.Decoder(_Probe)
_step_names = msgspec.json.Decoder(list[_Named])
_decoder = msgspec.json.Decoder(AnyJobSpec)


def _known(name: str, path: str, allowed: list[str]) -> None:
    if name in allowed:
        return
    if name in OPERATIONS:
        message = f"{name!r} cannot be a pipeline step; steps are one of {', '.join(allowed)}"
    else:
        message = f"unknown operation {name!r}; expected one of {', '.join(allowed)}"
    raise msgspec.ValidationError(f"{message} - at `{path}`")


def _check_names(body: bytes) -> None:
    """The operation, and a pipeline's step operations, by name before the rest: an unknown
    name is told with the names there are."""
    probe = _probe.decode(body)
    _known(probe.operation, "$.operation", list(OPERATIONS))
    if len(probe.steps) and "steps" in OPERATIONS[probe.operation].spec.__struct_fields__:
        try:
            names = _step_names.decode(probe.steps)
        except msgspec.ValidationError:
            return  # not a list of objects naming operations: the spec's decoder says how
        for index, step in enumerate(names):
            _known(step.operation, f"$.steps[{index}].operation", STEPS)


def decode_spec(body: bytes) -> JobSpec:
    """Decode and validate a JSON job spec; raises msgspec.ValidationError naming the path."""
    try:
        _check_names(body)
        return _decoder.decode(body)
    except RecursionError:  # msgspec gives up on very deep nesting: the caller's mistake
        raise msgspec.ValidationError("the JSON is nested too deeply - at `$`") from None
    except msgspec.ValidationError as exc:
        if " - at `" in str(exc):
            raise
        # msgspec names no path for the whole object (a rule of its `__post_init__`,
        # an unknown field): it is `$`.
        raise msgspec.ValidationError(f"{exc} - at `$`") from None


def operation_of(spec: JobSpec | PipelineStep) -> Operation:
    return OPERATIONS[spec.__struct_config__.tag]  # type: ignore[index]
