"""x402: pay per call instead of holding an account (FLEET_X402 = dev or on).

A job request without an API key is a payer's. Without a payment it gets the `402`
challenge: the v1 body and the v2 `PAYMENT-REQUIRED` header, priced as the account path
prices (gateway/quoting.py) from the header of the inline input, which is read in memory:
an unpaid request stores nothing and runs nothing. With `X-PAYMENT` (or v2's
`PAYMENT-SIGNATURE`) the authorization is checked here (billing/x402_verify.py: scheme,
network, asset, payee, amount, validity window, signature), its nonce claimed once in Redis
together with its amount counted against the wallet's balance on chain beside what the
wallet has authorized and not settled (billing/x402_wallet.py: one authorization never buys
two jobs, nor two authorizations the same funds, raced or not), and the facilitator asked
to verify it (the nonce on chain, a dry run), all before the job is admitted under
the payer's namespace `x402-<address>` with the authorization standing for the hold. Only
a success is settled (imagefleet/payments.py), and nothing of a job is shown to its payer
before it is: the result (inline data, output URL, facts) waits for the settlement.
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

from billing import x402_wallet as wallet
from billing.ratelimit import TAKE_TOKEN_LUA
from billing.x402 import (
    INSUFFICIENT_FUNDS,
    NONCE_USED,
    PAYMENT_HEADER,
    RESPONSE_HEADER,
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
from billing.x402_rpc import RpcError, token_balance
from billing.x402_verify import refusal
from gateway.admission import Authorized, _prepare, admit_job
from gateway.context import admission_calls, rate_limited
from gateway.quoting import Quote, quote
from gateway.services import Context
from gateway.signing import signed_url
from imagefleet.dispatch import time_limits
from imagefleet.payments import PAYER_PREFIX, required, resource_url, settle_job, tenant_of
from imagefleet.settings import Settings
from jobs.errors import ErrorCode, FleetError
from jobs.records import JobRecord, Payment, PaymentState, new_job_id
from jobs.registry import operation_of
from jobs.spec import InputRef, JobSpec
from storage import ObjectStore, tenant_key
from storage.base import Conflict, ObjectStat

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
    async with admission_calls():
        wait_ms = int(await script(keys=[bucket], args=[ctx.settings.x402_rate_limit, _now_ms()]))
    if wait_ms:
        raise rate_limited(wait_ms, f"too many requests without a key from {address}")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True)
class Presented:
    """A payment as it came: the x402 version its header speaks and the header's value."""

    version: int
    value: str

    @property
    def header(self) -> str:
        return PAYMENT_HEADER[self.version]


def payment_of(request: Request) -> Presented | None:
    """`PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1), the v2 one first."""
    for version in (2, 1):
        value = request.headers.get(PAYMENT_HEADER[version])
        if value is not None:
            return Presented(version, value)
    return None


class Unpaid(Exception):
    """The 402 answer: what the call costs and why what came (None: nothing) does not pay.
    The v1 body and the v2 header each name their own payment header when none came."""

    def __init__(self, asked: PaymentRequirements, reason: str | None) -> None:
        super().__init__(reason or "no payment")
        self.asked, self.reason = asked, reason

    def error(self, version: int) -> str:
        return self.reason or f"{PAYMENT_HEADER[version]} header is required"

    def response(self) -> Response:
        required = payment_required_header([self.asked], self.error(2))
        return Response(
            challenge_body([self.asked], self.error(1)),
            status_code=402,
            media_type="application/json",
            headers={"PAYMENT-REQUIRED": required},
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


def _unavailable(what: str) -> FleetError:
    return FleetError(
        ErrorCode.UNAVAILABLE, f"{what} is unreachable; retry", headers={"Retry-After": "5"}
    )


def _claim(ctx: Context, asked: PaymentRequirements, paid: wallet.Authorization) -> None:
    """Claim the nonce and count the amount against the wallet's balance (Unpaid if not)."""
    cfg: Settings = ctx.settings
    try:
        balance = token_balance(cfg.x402_rpc_url, cfg.x402_asset, paid.payer)
    except RpcError:
        raise _unavailable("the chain's RPC endpoint (the payer's balance)") from None
    got = wallet.claim(ctx.redis, paid, balance, int(time.time()), "admitting")
    if got.reused:
        raise Unpaid(asked, f"{NONCE_USED}: this authorization has already paid for a job")
    if not got.claimed:
        raise Unpaid(
            asked,
            f"{INSUFFICIENT_FUNDS}: {paid.payer} holds {balance}, of which {got.open} is"
            f" already authorized to jobs not settled yet; this payment asks {paid.amount}",
        )


def admit_paid(ctx: Context, spec: JobSpec, presented: Presented | None, path: str) -> JobRecord:
    """Admit a payer's job, or raise Unpaid (402) before anything is stored or run."""
    _inline_only(spec)
    op = operation_of(spec).name
    resource = resource_url(ctx.settings, path)
    asked = required(ctx.settings, op, _priced(ctx, spec).amount, resource)
    if presented is None:
        raise Unpaid(asked, None)
    payment = decode_payment(presented.value, presented.header)
    if isinstance(payment, Refusal):
        raise Unpaid(asked, f"{payment.reason}: {payment.detail}")
    _, hard = time_limits(op, ctx.settings)
    refused = refusal(payment, asked, now=int(time.time()), time_limit=hard)
    if refused is not None:
        raise Unpaid(asked, f"{refused.reason}: {refused.detail}")
    authorization = payment.payload.authorization
    paid = wallet.Authorization(
        asset=ctx.settings.x402_asset,
        payer=authorization.from_,
        nonce=authorization.nonce,
        amount=int(authorization.value),
        valid_before=int(authorization.valid_before),
    )
    _claim(ctx, asked, paid)
    admitted = False
    try:
        with FacilitatorClient(ctx.settings.x402_facilitator_url) as facilitator:
            verdict = facilitator.verify(payment, asked)
        if not verdict.is_valid:
            raise Unpaid(asked, f"{verdict.invalid_reason}: the facilitator refused the payment")
        authorized = Authorized(
            Payment(
                network=ctx.settings.x402_network,
                asset=ctx.settings.x402_asset,
                payer=authorization.from_.lower(),
                pay_to=authorization.to,
                amount_micros=int(authorization.value),
                nonce=authorization.nonce,
            ),
            presented.value,
        )
        record, _ = admit_job(ctx, tenant_of(authorization.from_), spec, None, None, authorized)
        admitted = True
        ctx.redis.set(paid.claim_key, record.id, xx=True, keepttl=True)
        return record
    except FacilitatorError:
        raise _unavailable("the payment facilitator") from None
    finally:
        if not admitted:  # refused or failed before the job: the authorization is unused
            wallet.unclaim(ctx.redis, paid)


# Why a payer's succeeded job shows no result yet, or never will (docs/payments.md).
WITHHELD = {
    PaymentState.AUTHORIZED: "payment_pending: the result is handed over once the payment"
    " is settled",
    PaymentState.REFUSED: "payment_refused: the payment could not be settled, so the"
    " result is not handed over and its outputs were deleted",
}


def is_settled(record: JobRecord) -> bool:
    return record.payment is not None and record.payment.state is PaymentState.SETTLED


def paid_view(ctx: Context, record: JobRecord) -> dict[str, Any]:
    """A payer's job as its keyless reader sees it: the result only once the payment is
    settled (`result_withheld` says why not), then each output with a signed `output_url`
    (a payer has no key to GET /v1/objects with)."""
    body = record.public()
    if not is_settled(record):
        if body.get("result") is not None:
            body["result"] = None
            state = record.payment.state if record.payment else PaymentState.AUTHORIZED
            body["result_withheld"] = WITHHELD.get(state, WITHHELD[PaymentState.AUTHORIZED])
        return body
    result = body.get("result") or {}
    for output in [result, *result.get("variants", [])]:
        if "output" in output:
            key = tenant_key(record.tenant, output["output"])
            output["output_url"], _ = signed_url(ctx, "GET", key, ctx.settings.signed_url_seconds)
    return body


def settlement(ctx: Context, job_id: str, patience: float = 60.0) -> SettlementResponse | None:
    """The settlement of a succeeded paid job (what `PAYMENT-RESPONSE` carries), made here
    unless the payments pool is already at it (then its outcome is waited for). None if
    it does not settle in time (the pool goes on trying; the job shows the outcome)."""
    deadline = time.monotonic() + patience
    while True:
        record, answer = settle_job(ctx.jobs, ctx.objects, ctx.ledger, ctx.settings, job_id)
        if answer is not None:
            return answer
        payment = record.payment if record is not None else None
        if payment is None or payment.state is PaymentState.UNSETTLED:
            return None
        if not payment.state.open:  # settled or refused by the payments pool meanwhile
            return recorded_settlement(msgspec.to_builtins(payment))
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def settled_headers(answer: SettlementResponse | None, presented: Presented) -> dict[str, str]:
    """The settlement header of the payment's version: `PAYMENT-RESPONSE` (v2) or
    `X-PAYMENT-RESPONSE` (v1)."""
    if answer is None:
        return {}
    return {RESPONSE_HEADER[presented.version]: payment_response_header(answer)}
