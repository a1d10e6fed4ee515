"""The price of a job before it runs, from its inputs' headers (never a full decode), and the
admission rule: every raster the job will create is bounded before it is accepted."""

from __future__ import annotations

from dataclasses import dataclass

from billing.header import Header, read_header
from gateway.services import Context
from jobs.prices import BillingRule, Flat, configured
from jobs.rasters import Limits, Raster, plan_of
from jobs.records import InputFacts
from jobs.registry import Operation, operation_of
from jobs.spec import JobSpec, input_key_of
from storage import ObjectNotFound, tenant_key
from storage.base import ObjectStat


@dataclass(frozen=True)
class Quote:
    megapixels: float | None  # None: a flat price
    amount: int  # micro-dollars to hold
    inputs: list[InputFacts]  # what was quoted, for the worker to check


def rule_for(ctx: Context, op: Operation) -> BillingRule:
    return configured(
        op.name, op.billing, ctx.settings.prices, ctx.settings.flat_price_max_megapixels
    )


def facts_of(stat: ObjectStat | None, header: Header | None) -> InputFacts:
    summary = (header.format, header.width, header.height, header.frames) if header else None
    if stat is None:
        return InputFacts(bytes=None, header=summary)
    return InputFacts(bytes=stat.size, etag=stat.version, header=summary)


# Headers already read, by (store, key, version, size, walk): an object's version changes
# whenever it is written, so a hit is the header of these very bytes (inputs submitted
# again and again skip their ranged reads). Bounded: emptied when full.
_HEADERS: dict[tuple[int, str, str, int, bool], Header | None] = {}
HEADERS_KEPT = 4096


def _header(ctx: Context, key: str, stat: ObjectStat | None, walk: bool) -> Header | None:
    """The input's header through ranged reads. The object's size bounds every read: an
    SVG's root tag is read from a bounded prefix, a PDF whole (its page tree can be
    anywhere), so a PDF of unknown size is unreadable and held at the most."""
    store = getattr(ctx.objects, "store", ctx.objects)  # the store under an admission's view
    cached = (id(store), key, stat.version, stat.size, walk) if stat else None
    if cached in _HEADERS:
        return _HEADERS[cached]
    try:
        header = read_header(
            lambda offset, length: ctx.objects.get_range(key, offset, length),
            size=stat.size if stat else None,
            count_frames=walk,
        )
    except ObjectNotFound:  # deleted since it was checked: the worker will say so
        return None
    if cached is not None:
        if len(_HEADERS) >= HEADERS_KEPT:
            _HEADERS.clear()
        _HEADERS[cached] = header
    return header


def quote(ctx: Context, tenant: str, spec: JobSpec) -> Quote:
    """Refuse (IMAGE_TOO_LARGE) a job whose planned rasters are over the limits, else
    price it. An unreadable header holds the price of FLEET_MAX_MEGAPIXELS: the worker
    plans from the bytes it decodes and captures that, never more than was held. Vector
    inputs (SVG, PDF) are planned at the job's density, and a page past a PDF's last is
    VALIDATION_ERROR here (spec.input_raster), before anything is held."""
    op = operation_of(spec)
    rule = rule_for(ctx, op)
    rasters: list[tuple[str, Raster]] = []
    billed: list[Raster] = []
    facts = []
    for index, (path, source) in enumerate(spec.sources()):
        key = tenant_key(tenant, input_key_of(source) or "")
        stat = ctx.objects.stat(key)  # one look-up: size for the reader, version to record
        header = _header(ctx, key, stat, spec.walks_pages(index))
        facts.append(facts_of(stat, header))
        if header is not None:
            rasters.append((path, spec.input_raster(index, header)))
            billed.append(spec.metered_raster(index, header))
    megapixels = ctx.settings.max_megapixels
    if len(rasters) == len(facts):  # every header read: the plan is known
        plan = plan_of(spec, rasters, len(rasters) if op.bills_all_inputs else 1, billed)
        plan.check(Limits.of(ctx.settings))
        megapixels = plan.megapixels()
    if isinstance(rule, Flat) and not (rule.metered and spec.decodes_pixels):
        return Quote(None, rule.price(0), facts)  # flat at any size
    return Quote(megapixels, rule.price(megapixels), facts)
