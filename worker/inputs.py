"""Read a job's inputs, check them against what was quoted and against the limits, then
decode them: nothing is decoded before its plan is known and within bounds.

The plan comes from the bytes' own headers (the pages and frames the job will read), the
same way the gateway computed it at admission; an input that changed since then fails
INPUT_CHANGED instead of running at the old price.
"""

from __future__ import annotations

from billing.header import Header, header_of_bytes
from imagefleet.settings import Settings
from jobs.analysis import MetadataJob
from jobs.crop import CropJob
from jobs.errors import ErrorCode, FleetError
from jobs.rasters import BASE_DPI, Limits, Plan, Raster, plan_of
from jobs.records import JobRecord
from jobs.registry import OPERATIONS
from jobs.spec import ImageJob, InputSource, input_key_of
from storage import ObjectNotFound, ObjectStore, tenant_key
from worker import codec, formats, vector
from worker.header_facts import facts_picture
from worker.picture import Picture


def _read(objects: ObjectStore, tenant: str, source: InputSource) -> tuple[bytes, str | None]:
    """The input's bytes and its version (taken first: a write in between shows as a
    changed version or size)."""
    key = input_key_of(source)
    assert key is not None  # the gateway stores inline inputs and rewrites them to keys
    try:
        stat = objects.stat(tenant_key(tenant, key))
        return objects.get(tenant_key(tenant, key)), stat.version if stat else None
    except ObjectNotFound:
        raise FleetError(
            ErrorCode.INPUT_NOT_FOUND, f"input object {key!r} no longer exists"
        ) from None


def _check_unchanged(
    record: JobRecord,
    index: int,
    path: str,
    data: bytes,
    version: str | None,
    header: Header | None,
) -> None:
    """The bytes read are the object that was quoted: same version, size and header."""
    if index >= len(record.inputs):
        return  # a record admitted before inputs were recorded
    quoted = record.inputs[index]
    summary = (header.format, header.width, header.height, header.frames) if header else None
    # A header the gateway could not read (it held the most) is not compared: the worker,
    # reading bytes in memory, may get further than the gateway's ranged reads did.
    if (
        quoted.etag not in (None, version)
        or quoted.bytes not in (None, len(data))
        or quoted.header not in (None, summary)
    ):
        raise FleetError(
            ErrorCode.INPUT_CHANGED,
            f"input {path} changed after the job was priced ({quoted.bytes} bytes"
            f" then, {len(data)} now); submit the job again",
        )


def plan_inputs(record: JobRecord, objects: ObjectStore, cfg: Settings) -> tuple[list[bytes], Plan]:
    """The inputs' bytes and the job's plan, checked against the limits."""
    spec = record.spec
    datas: list[bytes] = []
    rasters: list[tuple[str, Raster]] = []
    billed: list[Raster] = []
    for index, (path, source) in enumerate(spec.sources()):
        data, version = _read(objects, record.tenant, source)
        header = header_of_bytes(data, spec.walks_pages(index))
        _check_unchanged(record, index, path, data, version, header)
        header = header or codec.probe(data)  # a layout the header reader does not know
        datas.append(data)
        rasters.append((path, spec.input_raster(index, header)))
        billed.append(spec.metered_raster(index, header))
    metered = len(rasters) if OPERATIONS[record.operation].bills_all_inputs else 1
    plan = plan_of(spec, rasters, metered, billed)
    plan.check(Limits.of(cfg))
    return datas, plan


def _header_facts(data: bytes, limits: codec.Limits, page: int) -> Picture | None:
    """A raster input's facts from its header alone (SVG and PDF: drawn, as before)."""
    formats.ensure_plugins()
    return None if vector.kind(data) is not None else facts_picture(data, limits, page)


def crop_window(spec: ImageJob) -> tuple[int, int, int, int] | None:
    """The part of the image a crop keeps: only that is decoded where the format allows."""
    rect = spec.rect if isinstance(spec, CropJob) else None
    return None if rect is None else (rect.x, rect.y, rect.width, rect.height)


def decode_inputs(record: JobRecord, datas: list[bytes], cfg: Settings) -> list[Picture]:
    """Every input decoded; vector ones (SVG, PDF pages) drawn at the density the plan used."""
    spec = record.spec
    limits = codec.Limits(cfg.max_megapixels, cfg.max_frames)
    pictures = []
    for index, data in enumerate(datas):
        density = spec.dpi(index) if isinstance(spec, ImageJob) else BASE_DPI
        if index == 0 and isinstance(spec, MetadataJob) and not spec.animated:
            if (facts := _header_facts(data, limits, spec.page)) is not None:
                pictures.append(facts)  # what metadata reports, without decoding pixels
                continue
        if index == 0 and isinstance(spec, ImageJob):  # page/animated apply to the main input
            every = spec.animated or spec.reads_all_pages
            pictures.append(
                codec.decode(
                    data,
                    limits,
                    every,
                    spec.page,
                    timeline=spec.reads_timeline,
                    scale_for=spec.decode_scale,
                    density=density,
                    window=crop_window(spec),
                )
            )
        else:
            pictures.append(codec.decode(data, limits, density=density))
    return pictures
