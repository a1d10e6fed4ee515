"""A job's output keys at admission: each normalised (a variant's too) and none that the
store could not write beside the tenant's objects (`OUTPUT_CONFLICT`, charging nothing):
on the directory store a key that names a folder (`trap/dir` while `trap/dir/x` exists)
or lies inside an object (`a.png/x` while `a.png` exists). Overwriting an object of the same
key stays allowed (a rerun writes the same key). A conflict that appears after admission
ends the job `OUTPUT_CONFLICT` at its write, charged (billing/endings.py)."""

from __future__ import annotations

import msgspec

from gateway.keys import checked_key
from gateway.services import Context
from jobs.errors import ErrorCode, FleetError
from jobs.spec import FORMAT_OF_EXTENSION, JobSpec, extension_format
from jobs.variants import VariantsJob
from storage import tenant_key


def _names(key: str, fmt: str | None) -> list[str]:
    """The keys one output may be written under: with `format: auto` and no extension the
    worker adds the chosen format's (any image extension here, to be safe)."""
    if fmt == "auto" and extension_format(key) is None:
        return [f"{key}.{ext}" for ext in FORMAT_OF_EXTENSION]
    return [key]


def _normalised(spec: JobSpec) -> JobSpec:
    if isinstance(spec, VariantsJob):
        variants = [
            msgspec.structs.replace(v, output=checked_key(v.output, f"$.variants[{i}].output"))
            for i, v in enumerate(spec.variants)
        ]
        return msgspec.structs.replace(spec, variants=variants)
    if spec.output is not None:
        return msgspec.structs.replace(spec, output=checked_key(spec.output, "$.output"))
    return spec


def _written(spec: JobSpec, job_id: str) -> list[tuple[str, str]]:
    """(JSON path, key) of every key the job may write."""
    if isinstance(spec, VariantsJob):
        return [
            (f"$.variants[{i}].output", name)
            for i, v in enumerate(spec.variants)
            for name in _names(v.output, v.format)
        ]
    if "output" not in spec.__struct_fields__:
        return []  # its result is facts, not an image
    if spec.output is None:  # jobs/<id>/output.<ext>: only what lies above it can be in the way
        return [("$.output", f"jobs/{job_id}/output")]
    return [("$.output", name) for name in _names(spec.output, getattr(spec, "format", None))]


def checked_outputs(ctx: Context, tenant: str, job_id: str, spec: JobSpec) -> JobSpec:
    """The spec with its output keys normalised, or OUTPUT_CONFLICT naming the key, what it
    collides with and where in the spec it is."""
    spec = _normalised(spec)
    written = _written(spec, job_id)
    full = {tenant_key(tenant, key): (path, key) for path, key in written}
    conflict = ctx.objects.conflict(list(full))
    if conflict is None:
        return spec
    path, key = full[conflict.key]
    raise FleetError(
        ErrorCode.OUTPUT_CONFLICT,
        f"{_why(key, conflict.inside, full)}: a key cannot be both an object and a folder"
        f" - at `{path}`",
    )


def _why(key: str, inside: str | None, written: dict[str, tuple[str, str]]) -> str:
    if inside is None:
        return f"output {key!r} is a folder of other objects"
    if inside in written:
        return f"output {key!r} lies inside {written[inside][1]!r}, another output of this job"
    return f"output {key!r} lies inside the object {inside.split('/', 2)[2]!r}"
