"""x402, pay per call over HTTP 402: the `exact` scheme on EVM chains (an EIP-712-signed
EIP-3009 `TransferWithAuthorization` of a USDC-like token). The protocol's shapes:

the 402 challenge (v1 JSON body, v2 `PAYMENT-REQUIRED` header), the payer's `X-PAYMENT` (v1)
/ `PAYMENT-SIGNATURE` (v2) header read into a `PaymentPayload` (hostile input gives a
`Refusal`, never an exception), a facilitator request's parts, and the settlement header
(`X-PAYMENT-RESPONSE` in v1, `PAYMENT-RESPONSE` in v2). Networks: v1 names them (`base`), v2
by CAIP-2 (`eip155:8453`); the names are the official SDK's (x402.mechanisms.evm.v1).
Refusal reasons are the x402 facilitators' codes. The signature and the checks on a payment
are in billing/x402_verify.py. Pure and settings-free: values come as arguments.

USDC has 6 decimals: one atomic unit is one micro-dollar, so prices in micros are amounts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import msgspec

X402_VERSION = 1
SCHEME = "exact"
MAX_HEADER_CHARS = 8192

# Refusal reasons (the x402 vocabulary, plus an asset mismatch of our own).
INVALID_PAYLOAD = "invalid_payload"
INVALID_VERSION = "invalid_x402_version"
INVALID_REQUIREMENTS = "invalid_payment_requirements"
UNSUPPORTED_SCHEME = "unsupported_scheme"
INVALID_NETWORK = "invalid_network"
ASSET_MISMATCH = "invalid_exact_evm_payload_asset_mismatch"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
VALUE_TOO_LOW = "invalid_exact_evm_payload_authorization_value"
NOT_YET_VALID = "invalid_exact_evm_payload_authorization_valid_after"
EXPIRES_TOO_SOON = "invalid_exact_evm_payload_authorization_valid_before"
BAD_SIGNATURE = "invalid_exact_evm_payload_signature"
NONCE_USED = "invalid_exact_evm_nonce_already_used"
INSUFFICIENT_FUNDS = "insufficient_funds"

# The headers of each version: the payment, the settlement.
PAYMENT_HEADER = {1: "X-PAYMENT", 2: "PAYMENT-SIGNATURE"}
RESPONSE_HEADER = {1: "X-PAYMENT-RESPONSE", 2: "PAYMENT-RESPONSE"}

# The dev chain (eth-tester's py-evm chain id) has no x402 name: v1 calls it this, and an SDK
# payer adds it to the SDK's name table (docs/payments.md).
DEV_NETWORK, DEV_CHAIN_ID = "imagefleet-dev", 131277322940537
# x402 v1 network names and their chain ids, as the official SDK (2.25) maps them; v2 names
# networks by CAIP-2 (`eip155:8453`).
NETWORKS = {
    "base": 8453,
    "base-sepolia": 84532,
    "ethereum": 1,
    "polygon": 137,
    "polygon-amoy": 80002,
    "avalanche": 43114,
    "avalanche-fuji": 43113,
    "abstract": 2741,
    "abstract-testnet": 11124,
    "iotex": 4689,
    "sei": 1329,
    "sei-testnet": 1328,
    "peaq": 3338,
    "story": 1513,
    "educhain": 656476,
    "skale-base-sepolia": 1444673419,
    "megaeth": 4326,
    "monad": 143,
    "monad-testnet": 10143,
    "stable": 988,
    "stable-testnet": 2201,
    "celo": 42220,
    "flare": 14,
    DEV_NETWORK: DEV_CHAIN_ID,
}
_NAMES = {chain: name for name, chain in NETWORKS.items()}
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
UINT = re.compile(r"[0-9]{1,78}")  # a uint256 in decimal (range checked where read)


class Refusal(msgspec.Struct, frozen=True):
    """Why a payment is not accepted: an x402 reason code and a sentence for people."""

    reason: str
    detail: str


class PaymentRequirements(msgspec.Struct, frozen=True, rename="camel"):
    """One item of a 402's `accepts` (v1): what the server takes for this resource.
    `extra` carries the token's EIP-712 domain name and version."""

    scheme: str
    network: str
    max_amount_required: str
    resource: str
    description: str
    mime_type: str
    pay_to: str
    max_timeout_seconds: int
    asset: str
    extra: dict[str, Any] | None = None


class RequirementsV2(msgspec.Struct, frozen=True, rename="camel"):
    """The v2 form: `amount` for `maxAmountRequired`, a CAIP-2 network, no resource."""

    scheme: str
    network: str
    amount: str
    asset: str
    pay_to: str
    max_timeout_seconds: int
    extra: dict[str, Any] | None = None


class Authorization(msgspec.Struct, frozen=True, rename="camel"):
    """EIP-3009's authorization as x402 carries it: numbers as decimal strings."""

    from_: str = msgspec.field(name="from")
    to: str
    value: str
    valid_after: str
    valid_before: str
    nonce: str


class ExactPayload(msgspec.Struct, frozen=True):
    signature: str
    authorization: Authorization


class PaymentPayload(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The payer's answer, v1 or v2 (then `accepted` holds the requirements it chose)."""

    x402_version: int
    scheme: str
    network: str
    payload: ExactPayload
    accepted: RequirementsV2 | None = None

    def wire(self) -> dict[str, Any]:
        """As the payer sent it (a facilitator's `paymentPayload`)."""
        if self.accepted is None:
            return msgspec.to_builtins(self)
        return {
            "x402Version": self.x402_version,
            "accepted": msgspec.to_builtins(self.accepted),
            "payload": msgspec.to_builtins(self.payload),
        }


class _Wire(msgspec.Struct, rename="camel"):
    x402_version: int
    payload: ExactPayload
    scheme: str | None = None
    network: str | None = None
    accepted: RequirementsV2 | None = None


class PaymentRequired(msgspec.Struct, frozen=True, rename="camel"):
    x402_version: int
    error: str
    accepts: list[PaymentRequirements]


class SettlementResponse(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`X-PAYMENT-RESPONSE` (and a facilitator's `/settle` answer)."""

    success: bool
    transaction: str
    network: str
    payer: str = ""
    error_reason: str | None = None


_WIRE = msgspec.json.Decoder(_Wire)
_RESPONSE = msgspec.json.Decoder(SettlementResponse)


def chain_id(network: str) -> int | None:
    """The chain id of a v1 network name or a CAIP-2 `eip155:<id>`; None if unknown."""
    if network.startswith("eip155:") and UINT.fullmatch(network[7:]):
        return int(network[7:])
    return NETWORKS.get(network)


def caip2(network: str) -> str:
    """`base` -> `eip155:8453` (a CAIP-2 name passes through)."""
    known = chain_id(network)
    return f"eip155:{known}" if known is not None else network


def v1_name(network: str) -> str:
    """`eip155:8453` -> `base`: the v1 name of a chain (a chain with none keeps its CAIP-2)."""
    known = chain_id(network)
    return _NAMES.get(known, network) if known is not None else network


def requirements(
    *,
    amount: int,
    pay_to: str,
    asset: str,
    network: str,
    resource: str,
    description: str,
    max_timeout_seconds: int,
    token_name: str,
    token_version: str,
    mime_type: str = "application/json",
) -> PaymentRequirements:
    """The `exact` requirements (v1's form, its network named) for one call costing `amount`
    atomic units (micros); `resource` is the call's absolute URL."""
    return PaymentRequirements(
        scheme=SCHEME,
        network=v1_name(network),
        max_amount_required=str(amount),
        resource=resource,
        description=description,
        mime_type=mime_type,
        pay_to=pay_to,
        max_timeout_seconds=max_timeout_seconds,
        asset=asset,
        extra={"name": token_name, "version": token_version},
    )


def to_v2(required: PaymentRequirements) -> RequirementsV2:
    return RequirementsV2(
        scheme=required.scheme,
        network=caip2(required.network),
        amount=required.max_amount_required,
        asset=required.asset,
        pay_to=required.pay_to,
        max_timeout_seconds=required.max_timeout_seconds,
        extra=required.extra,
    )


def challenge_body(accepts: list[PaymentRequirements], error: str) -> bytes:
    """The v1 402 body: `{x402Version: 1, error, accepts}`."""
    return msgspec.json.encode(PaymentRequired(X402_VERSION, error, accepts))


def decode_challenge(body: bytes | str) -> PaymentRequired:
    """A 402 body read back (the payer's side); msgspec.DecodeError if it is not one."""
    return msgspec.json.decode(body, type=PaymentRequired)


def payment_required_header(accepts: list[PaymentRequirements], error: str) -> str:
    """The v2 `PAYMENT-REQUIRED` header: base64 JSON with the resource beside the accepts."""
    first = accepts[0]
    document = {
        "x402Version": 2,
        "error": error,
        "resource": {
            "url": first.resource,
            "description": first.description,
            "mimeType": first.mime_type,
        },
        "accepts": [msgspec.to_builtins(to_v2(item)) for item in accepts],
    }
    return base64.b64encode(msgspec.json.encode(document)).decode()


def _b64json(header: str | bytes, name: str) -> bytes | Refusal:
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    text = text.strip()
    if not text:
        return Refusal(INVALID_PAYLOAD, f"the {name} header is empty")
    if len(text) > MAX_HEADER_CHARS:
        return Refusal(INVALID_PAYLOAD, f"the {name} header is over {MAX_HEADER_CHARS} chars")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return Refusal(INVALID_PAYLOAD, f"the {name} header is not base64")


def decode_payment(header: str | bytes | None, name: str = "payment") -> PaymentPayload | Refusal:
    """`X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2): base64 of the payment payload JSON
    (`name`: the header it came in, for the refusal's sentence)."""
    if header is None:
        return Refusal(INVALID_PAYLOAD, f"no {name} header")
    raw = _b64json(header, name)
    if isinstance(raw, Refusal):
        return raw
    try:
        wire = _WIRE.decode(raw)
    except msgspec.DecodeError as exc:
        return Refusal(INVALID_PAYLOAD, f"the payment is not an x402 payment payload: {exc}")
    return _normalise(wire)


def payment_from_json(document: Any) -> PaymentPayload | Refusal:
    """A facilitator request's `paymentPayload` (already parsed JSON)."""
    try:
        return _normalise(msgspec.convert(document, _Wire))
    except msgspec.ValidationError as exc:
        return Refusal(INVALID_PAYLOAD, f"the payment is not an x402 payment payload: {exc}")


def requirements_from_json(document: Any) -> PaymentRequirements | Refusal:
    """A facilitator request's `paymentRequirements`, in the v1 or the v2 form."""
    try:
        if isinstance(document, dict) and "amount" in document:
            v2 = msgspec.convert(document, RequirementsV2)
            return PaymentRequirements(
                scheme=v2.scheme,
                network=v2.network,
                max_amount_required=v2.amount,
                resource=str(document.get("resource", "")),
                description="",
                mime_type="",
                pay_to=v2.pay_to,
                max_timeout_seconds=v2.max_timeout_seconds,
                asset=v2.asset,
                extra=v2.extra,
            )
        required = msgspec.convert(document, PaymentRequirements)
    except msgspec.ValidationError as exc:
        return Refusal(INVALID_REQUIREMENTS, f"not x402 payment requirements: {exc}")
    if not UINT.fullmatch(required.max_amount_required):
        return Refusal(INVALID_REQUIREMENTS, "the required amount is not a decimal integer")
    return required


def _normalise(wire: _Wire) -> PaymentPayload | Refusal:
    if wire.x402_version == 2:
        if wire.accepted is None:
            return Refusal(INVALID_PAYLOAD, "an x402 v2 payment names what it `accepted`")
        scheme, network = wire.accepted.scheme, wire.accepted.network
    elif wire.x402_version == 1:
        if wire.scheme is None or wire.network is None:
            return Refusal(INVALID_PAYLOAD, "an x402 v1 payment names its scheme and network")
        scheme, network = wire.scheme, wire.network
    else:
        return Refusal(INVALID_VERSION, f"x402 version {wire.x402_version} is not spoken here")
    return PaymentPayload(wire.x402_version, scheme, network, wire.payload, wire.accepted)


def encode_payment(payment: PaymentPayload) -> str:
    """The header value a payer sends."""
    return base64.b64encode(msgspec.json.encode(payment.wire())).decode()


def payment_response_header(response: SettlementResponse) -> str:
    """`X-PAYMENT-RESPONSE` (v1) / `PAYMENT-RESPONSE` (v2): base64 JSON `{success,
    transaction, network, payer}`."""
    return base64.b64encode(msgspec.json.encode(response)).decode()


def recorded_settlement(payment: object) -> SettlementResponse | None:
    """A paid job's settlement as its `payment` (the job object's) records it, once settled
    or refused; None before, for a payment never to be settled, or without a payment."""
    if not isinstance(payment, Mapping) or payment.get("state") not in ("settled", "refused"):
        return None
    return SettlementResponse(
        success=payment["state"] == "settled",
        transaction=payment.get("transaction") or "",
        network=payment.get("network", ""),
        payer=payment.get("payer", ""),
        error_reason=payment.get("error"),
    )


def decode_payment_response(header: str) -> SettlementResponse:
    """The payer reads `X-PAYMENT-RESPONSE` / `PAYMENT-RESPONSE`; ValueError if not one."""
    try:
        return _RESPONSE.decode(base64.b64decode(header, validate=True))
    except (binascii.Error, msgspec.DecodeError) as exc:
        raise ValueError(f"not an X-PAYMENT-RESPONSE: {exc}") from None
