"""`@operation(pool, price, example=...)`: an operation declared once, on its spec.

`declared_operations()` finds every declaration in the `jobs` package; jobs/registry.py
builds the registry from them, jobs/pipeline.py the union of pipeline steps.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast

import msgspec

from jobs.operation import Operation
from jobs.pools import Pool
from jobs.prices import BillingRule, PerMegapixel
from jobs.spec import JobSpec, PipelineStep, TransformJob

if TYPE_CHECKING:
    from types import ModuleType

S = TypeVar("S", bound=type[JobSpec])
_PER_MEGAPIXEL = PerMegapixel()


def operation(
    queue: Pool,
    billing: BillingRule = _PER_MEGAPIXEL,
    *,
    example: dict[str, Any],
    step: bool = False,
    bills_all_inputs: bool = False,
    soft_time_limit: int = 60,
    time_limit: int = 90,
) -> Callable[[S], S]:
    """Declare the decorated spec class an operation named by its tag."""

    def declare(spec: S) -> S:
        name = spec.__struct_config__.tag
        assert isinstance(name, str), f"{spec.__name__} needs a tag: its operation's name"
        step_spec = None
        if step:
            if not issubclass(spec, TransformJob):
                raise TypeError(f"{name}: a pipeline step reads one image and makes one")
            step_spec = step_form(spec)
        spec.declared = Operation(
            name,
            spec,
            queue,
            billing,
            example,
            pipeline_step=step,
            bills_all_inputs=bills_all_inputs,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            step=step_spec,
        )
        return spec

    return declare


def step_form(spec: type[TransformJob]) -> type[PipelineStep]:
    """`spec` as a pipeline step: the fields its classes below TransformJob declare, the
    same tag and the same field rules (its `__post_init__`, which may read only those)."""
    below = spec.__mro__[: spec.__mro__.index(TransformJob)]
    own = {name for cls in below for name in inspect.get_annotations(cls)}
    fields = [
        (f.name, f.type, msgspec.field(name=f.encode_name, **_default(f)))
        for f in msgspec.structs.fields(spec)
        if f.name in own
    ]
    namespace: dict[str, Any] = {"__doc__": spec.__doc__, "job_spec": spec}
    if hasattr(spec, "__post_init__"):
        namespace["__post_init__"] = spec.__post_init__
    made = msgspec.defstruct(
        spec.__name__.removesuffix("Job") + "Step",
        fields,
        bases=(PipelineStep,),
        tag=spec.__struct_config__.tag,
        namespace=namespace,
        module=spec.__module__,
        kw_only=True,
    )
    return cast(type[PipelineStep], made)


def _default(f: msgspec.structs.FieldInfo) -> dict[str, Any]:
    if f.default is not msgspec.NODEFAULT:
        return {"default": f.default}
    if f.default_factory is not msgspec.NODEFAULT:
        return {"default_factory": f.default_factory}
    return {}


# Importing every module of the package would import the job records, which import the
# registry: a module is imported only if its text declares an operation.
_DECLARES = re.compile(r"^@operation\(", re.MULTILINE)


def _declaring_modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    modules = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        name = f"{package}.{info.name}"
        spec = importlib.util.find_spec(name)
        source = spec.loader.get_source(name) if spec and spec.loader else None  # type: ignore[attr-defined]
        if source and _DECLARES.search(source):
            modules.append(importlib.import_module(name))
    return modules


def declared_operations(package: str = "jobs") -> list[Operation]:
    """Every operation declared in the package's modules, by name."""
    found: dict[str, Operation] = {}
    for module in _declaring_modules(package):
        for value in vars(module).values():
            op = getattr(value, "declared", None) if isinstance(value, type) else None
            if op is None or op.spec is not value:  # not declared here, or inherited
                continue
            other = found.setdefault(op.name, op)
            if other is not op:
                raise TypeError(f"{op.name!r} is declared twice: {other.spec} and {op.spec}")
    return sorted(found.values(), key=lambda op: op.name)


def step_union() -> Any:
    """The tagged union of every operation's step form (pipeline and variants steps). Called
    while jobs.pipeline or jobs.variants is half-imported: their own declarations are not
    made yet, which is right, since neither is a step."""
    return Union[tuple(op.step for op in declared_operations() if op.step is not None)]  # noqa: UP007
