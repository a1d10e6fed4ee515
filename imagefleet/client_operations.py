"""The clients' `run(job)`, and one named method per operation, made from the registry:
`fleet.crop(job)` is `fleet.run(job)` for a `CropJob` (a `TypeError` for another spec).
Adding an operation needs no change here: its spec's declaration makes its method.

`run` is the typed entry point (the spec's constructor checks its fields, and the spec names
its operation). The named methods exist at run time only: a type checker does not see
them, which keeps it checking every other attribute of a client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from jobs.operation import Operation
from jobs.registry import OPERATIONS
from jobs.spec import JobSpec

R = TypeVar("R")


class Operations(Generic[R]):
    """`run(job)` for any spec, and a method per operation of `jobs.registry.OPERATIONS`
    ("-" becomes "_": `exif_strip`), generic over the result so one definition serves
    `JobResult` and `Awaitable[JobResult]`."""

    def run(self, job: JobSpec, wait: bool = True) -> R:
        """Submit `job`; with `wait`, return it once it ended (else as submitted)."""
        raise NotImplementedError


def method_name(op: Operation) -> str:
    return op.name.replace("-", "_")


def _named(op: Operation) -> Callable[..., Any]:
    spec, name = op.spec, method_name(op)

    def run_operation(self: Operations[Any], job: JobSpec, wait: bool = True) -> Any:
        if not isinstance(job, spec):
            raise TypeError(f"{name}() takes a {spec.__name__}, not a {type(job).__name__}")
        return self.run(job, wait)

    run_operation.__name__, run_operation.__qualname__ = name, f"Operations.{name}"
    summary = (spec.__doc__ or "").strip().split("\n\n")[0]
    run_operation.__doc__ = f"Run a `{op.name}` job ({spec.__name__}): {summary}"
    return run_operation


for _op in OPERATIONS.values():
    assert not hasattr(Operations, method_name(_op)), f"{_op.name}: the name is taken"
    setattr(Operations, method_name(_op), _named(_op))
