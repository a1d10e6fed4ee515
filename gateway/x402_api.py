"""x402: pay per call instead of holding an account (FLEET_X402 = dev or on).

A job request without an API key is a payer's. Without a payment it gets the `402`
challenge: the v1 body and the v2 `PAYMENT-REQUIRED` header, priced as the account path
prices (gateway/quoting.py) from the header of the inline input, which is read in memory:
an unpaid request stores nothing and runs nothing. With `X-PAYMENT` (or v2's
`PAYMENT-SIGNATURE`) the authorization is checked here (billing/x402_verify.py: scheme,
network, asset, payee, amount, validity window, signature), its nonce claimed once in Redis
(so one authorization never buys two jobs, raced or not), and the facilitator asked to
verify it (the payer's balance, the nonce on chain), all before the job is admitted under
the payer's namespace `x402-<address>` with the authorization standing for the hold. Only
a success is settled (imagefleet/payments.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, BinaryIO

import msgspec
from redis.commands.core import AsyncScript
from starlette.requests import Request
from starlette.responses import Response

from billing.ratelimit import TAKE_TOKEN_LUA
from billing.x402 import (
    NONCE_USED,
    PaymentRequirements,
    Refusal,
    SettlementResponse,
    challenge_body,
    decode_payment,
    payment_required_header,
    payment_response_header,
    recorded_settlement,
)
from billing.x402_facilitator_client import FacilitatorClient, FacilitatorError
from billing.x402_verify import refusal
from gateway.admission import Authorized, _prepare, admit_job
from gateway.context import rate_limited
from gateway.quoting import Quote, quote
from gateway.services import Context
from gateway.signing import signed_url
from imagefleet.dispatch import time_limits
from imagefleet.payments import PAYER_PREFIX, required, settle_job, tenant_of
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobRecord, Payment, PaymentState, new_job_id
from jobs.registry import operation_of
from jobs.spec import InputRef, JobSpec
from storage import ObjectStore, tenant_key
from storage.base import Conflict, ObjectStat

NONCES = "imagefleet:x402:nonce:"  # + asset:payer:nonce -> the job it bought
QUOTING = "x402-quote"  # the namespace an unpaid request's inline input is read under


PAYER = PAYER_PREFIX  # the tenant of a keyless read: any payer's job, found by its id


def is_payer(reader: str, owner: str) -> bool:
    """A keyless reader (PAYER) may read a payer's job by its id, and only a payer's."""
    return reader == PAYER and owner.startswith(PAYER)


def paying(request: Request, ctx: Context) -> bool:
    """Whether this request goes the x402 way: payments on, and no API key."""
    return ctx.settings.x402 != "off" and "authorization" not in request.headers


_TAKE = TAKE_TOKEN_LUA + "return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))"
_SCRIPTS: dict[int, AsyncScript] = {}  # by client: registered once per connection pool


async def limit_keyless(request: Request, ctx: Context) -> None:
    """A keyless request has no key to rate-limit by: each client address gets a bucket of
    FLEET_X402_RATE_LIMIT a second (429 with Retry-After past it), before its body is read."""
    script = _SCRIPTS.get(id(ctx.aredis))
    if script is None:
        script = _SCRIPTS[id(ctx.aredis)] = ctx.aredis.register_script(_TAKE)
    address = request.client.host if request.client else "unknown"
    bucket = f"imagefleet:rate:x402:{address}"
    wait_ms = int(await script(keys=[bucket], args=[ctx.settings.x402_rate_limit, _now_ms()]))
    if wait_ms:
        raise rate_limited(wait_ms, f"too many requests without a key from {address}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def payment_of(request: Request) -> str | None:
    return request.headers.get("x-payment") or request.headers.get("payment-signature")


class Unpaid(Exception):
    """The 402 answer: what the call costs and why what came (if anything) does not pay."""

    def __init__(self, asked: PaymentRequirements, reason: str) -> None:
        super().__init__(reason)
        self.asked, self.reason = asked, reason

    def response(self) -> Response:
        return Response(
            challenge_body([self.asked], self.reason),
            status_code=402,
            media_type="application/json",
            headers={"PAYMENT-REQUIRED": payment_required_header([self.asked], self.reason)},
        )


class _InMemory:
    """The object store as an unpaid quote sees it: inline inputs kept in memory, reads
    of anything else passed through (and found in no payer's namespace)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = self  # quoting's header cache is keyed by this view, not the store
        self._under = store
        self._kept: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._kept[key] = data

    def put_stream(self, key: str, stream: BinaryIO, size: int, content_type: str) -> None:
        self._kept[key] = stream.read(size)

    def stat(self, key: str) -> ObjectStat | None:
        if key in self._kept:
            data = self._kept[key]
            return ObjectStat(len(data), hashlib.sha256(data).hexdigest())
        return self._under.stat(key)

    def size(self, key: str) -> int | None:
        found = self.stat(key)
        return found.size if found is not None else None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if key in self._kept:
            return self._kept[key][offset : offset + length]
        return self._under.get_range(key, offset, length)

    def get(self, key: str) -> bytes:
        return self._kept[key] if key in self._kept else self._under.get(key)

    def delete(self, key: str) -> None:
        self._kept.pop(key, None)

    def conflict(self, keys: list[str]) -> Conflict | None:
        return self._under.conflict(keys)

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        return None

    def sweep(self, older_than: float) -> int:
        return 0

    def check(self) -> None:
        self._under.check()


def _inline_only(spec: JobSpec) -> None:
    """A payer has no namespace to upload into before paying: inputs come inline."""
    for path, source in spec.sources():
        if not (isinstance(source, InputRef) and source.inline is not None):
            raise FleetError(
                ErrorCode.VALIDATION_ERROR,
                f'an x402 call carries its input inline ({{"inline": "<base64>"}}) - at `{path}`',
            )


def _priced(ctx: Context, spec: JobSpec) -> Quote:
    """The job's quote and limits from its inline inputs' headers, nothing stored."""
    view = dataclasses.replace(ctx, objects=_InMemory(ctx.objects))
    prepared = _prepare(view, QUOTING, new_job_id(), spec)
    return quote(view, QUOTING, prepared)


def _nonce_key(ctx: Context, payer: str, nonce: str) -> str:
    return f"{NONCES}{ctx.settings.x402_asset.lower()}:{payer.lower()}:{nonce.lower()}"


def admit_paid(ctx: Context, spec: JobSpec, header: str | None, resource: str) -> JobRecord:
    """Admit a payer's job, or raise Unpaid (402) before anything is stored or run."""
    _inline_only(spec)
    op = operation_of(spec).name
    asked = required(ctx.settings, op, _priced(ctx, spec).amount, resource)
    if header is None:
        raise Unpaid(asked, "X-PAYMENT header is required")
    payment = decode_payment(header)
    if isinstance(payment, Refusal):
        raise Unpaid(asked, f"{payment.reason}: {payment.detail}")
    _, hard = time_limits(op, ctx.settings)
    refused = refusal(payment, asked, now=int(time.time()), time_limit=hard)
    if refused is not None:
        raise Unpaid(asked, f"{refused.reason}: {refused.detail}")
    authorization = payment.payload.authorization
    claim = _nonce_key(ctx, authorization.from_, authorization.nonce)
    expiry = max(60, int(authorization.valid_before) - int(time.time()) + 3600)
    if not ctx.redis.set(claim, "admitting", nx=True, ex=expiry):
        raise Unpaid(asked, f"{NONCE_USED}: this authorization has already paid for a job")
    admitted = False
    try:
        with FacilitatorClient(ctx.settings.x402_facilitator_url) as facilitator:
            verdict = facilitator.verify(payment, asked)
        if not verdict.is_valid:
            raise Unpaid(asked, f"{verdict.invalid_reason}: the facilitator refused the payment")
        paid = Authorized(
            Payment(
                network=ctx.settings.x402_network,
                asset=ctx.settings.x402_asset,
                payer=authorization.from_.lower(),
                pay_to=authorization.to,
                amount_micros=int(authorization.value),
                nonce=authorization.nonce,
            ),
            header,
        )
        record, _ = admit_job(ctx, tenant_of(authorization.from_), spec, None, None, paid)
        admitted = True
        ctx.redis.set(claim, record.id, xx=True, keepttl=True)
        return record
    except FacilitatorError:
        raise FleetError(
            ErrorCode.UNAVAILABLE,
            "the payment facilitator is unreachable; retry",
            headers={"Retry-After": "5"},
        ) from None
    finally:
        if not admitted:  # refused or failed before the job: the authorization is unused
            ctx.redis.delete(claim)


def paid_view(ctx: Context, record: JobRecord) -> dict[str, Any]:
    """A payer's job as its keyless reader sees it: once the payment is settled, each output
    comes with a signed `output_url` (a payer has no key to GET /v1/objects with)."""
    body = record.public()
    settled_ = record.payment is not None and record.payment.state is PaymentState.SETTLED
    result = body.get("result") or {}
    if settled_:
        for output in [result, *result.get("variants", [])]:
            if "output" in output:
                key = tenant_key(record.tenant, output["output"])
                output["output_url"], _ = signed_url(
                    ctx, "GET", key, ctx.settings.signed_url_seconds
                )
    return body


def settlement(ctx: Context, job_id: str, patience: float = 60.0) -> SettlementResponse | None:
    """The settlement of a succeeded paid job (what `X-PAYMENT-RESPONSE` carries), made here
    unless the webhooks pool is already at it (then its outcome is waited for). None if it
    does not settle in time (the pool goes on trying; the job shows the outcome)."""
    deadline = time.monotonic() + patience
    while True:
        record, answer = settle_job(ctx.jobs, ctx.ledger, ctx.settings, job_id)
        if answer is not None:
            return answer
        payment = record.payment if record is not None else None
        if payment is None or payment.state is PaymentState.UNSETTLED:
            return None
        if not payment.state.open:  # settled or refused by the webhooks pool meanwhile
            return recorded_settlement(msgspec.to_builtins(payment))
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def settled_headers(answer: SettlementResponse | None) -> dict[str, str]:
    return {"X-PAYMENT-RESPONSE": payment_response_header(answer)} if answer else {}
