"""The price of a job before it runs, from its inputs' headers (never a full decode)."""

from __future__ import annotations

from billing.header import read_header
from billing.metering import total_megapixels
from billing.prices import BillingRule, Flat, configured
from gateway.context import Context
from jobs.registry import Operation, operation_of
from jobs.spec import ImageJob, JobSpec, input_key_of
from storage import ObjectNotFound, tenant_key


def rule_for(ctx: Context, op: Operation) -> BillingRule:
    return configured(op.name, op.billing, ctx.settings.prices)


def quote(ctx: Context, tenant: str, spec: JobSpec) -> tuple[float, int]:
    """(megapixels, micro-dollars). An unreadable header quotes the 1 MP minimum: the
    worker then fails the job with IMAGE_PARSE_FAILED and the hold is released."""
    op = operation_of(spec)
    rule = rule_for(ctx, op)
    if isinstance(rule, Flat):
        return 0.0, rule.price(0)
    animated = isinstance(spec, ImageJob) and spec.animated
    sources = spec.sources() if op.bills_all_inputs else spec.sources()[:1]
    dims = []
    for _, source in sources:
        key = tenant_key(tenant, input_key_of(source) or "")
        try:
            header = read_header(
                lambda offset, length, k=key: ctx.objects.get_range(k, offset, length),
                size=ctx.objects.size(key), count_frames=animated)
        except ObjectNotFound:  # deleted since it was checked: the worker will say so
            header = None
        if header is not None:
            dims.append((header.width, header.height, header.frames if animated else 1))
    megapixels = total_megapixels(dims)
    return megapixels, rule.price(megapixels)
