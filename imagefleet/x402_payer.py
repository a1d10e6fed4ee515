"""Paying with x402 from the client side: a private key and a 402's requirements make the
`X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2) header value.

The authorization is EIP-3009's: a random 32-byte nonce, valid from ten minutes ago (clock
skew, as x402's clients do) until now + the requirements' `maxTimeoutSeconds`, for exactly
the amount asked. Signing needs eth-account (`pip install 'imagefleet[server]'` brings it).
"""

from __future__ import annotations

import os
import time
from typing import Any

from billing.x402 import (
    SCHEME,
    Authorization,
    ExactPayload,
    PaymentPayload,
    PaymentRequirements,
    caip2,
    chain_id,
    decode_challenge,
    encode_payment,
    to_v2,
)
from billing.x402_verify import sign, typed_data

CLOCK_SKEW = 600  # seconds before now the authorization already holds


class PaymentError(ValueError):
    """These requirements cannot be paid with this key (unknown network, no token domain)."""


def address_of(private_key: str | bytes) -> str:
    try:
        from eth_account import Account
    except ImportError:  # a plain client install
        raise PaymentError("paying with x402 needs eth-account: pip install eth-account") from None
    return str(Account.from_key(private_key).address)


def choose(accepts: list[PaymentRequirements], network: str | None = None) -> PaymentRequirements:
    """The first `exact` offer (on `network`, by name or chain id, when given)."""
    for offer in accepts:
        if offer.scheme == SCHEME and (
            network is None or chain_id(offer.network) == chain_id(network)
        ):
            return offer
    raise PaymentError(f"no `{SCHEME}` offer{f' on {network}' if network else ''} in the 402")


def authorize(
    private_key: str | bytes,
    required: PaymentRequirements,
    *,
    now: int | None = None,
    valid_for: int | None = None,
    nonce: bytes | None = None,
    version: int = 1,
) -> PaymentPayload:
    """The signed payment for `required` (`valid_for` seconds from now, default its
    maxTimeoutSeconds)."""
    chain = chain_id(required.network)
    extra = required.extra or {}
    name, token_version = extra.get("name"), extra.get("version")
    if chain is None or not isinstance(name, str) or not isinstance(token_version, str):
        raise PaymentError(f"cannot sign for {required.network!r} without the token's domain")
    moment = int(time.time()) if now is None else now
    authorization = Authorization(
        from_=address_of(private_key),
        to=required.pay_to,
        value=required.max_amount_required,
        valid_after=str(max(0, moment - CLOCK_SKEW)),
        valid_before=str(
            moment + (required.max_timeout_seconds if valid_for is None else valid_for)
        ),
        nonce="0x" + (os.urandom(32) if nonce is None else nonce).hex(),
    )
    typed = typed_data(
        authorization, name=name, version=token_version, chain=chain, asset=required.asset
    )
    signed = ExactPayload(sign(typed, private_key), authorization)
    if version == 2:
        return PaymentPayload(2, SCHEME, caip2(required.network), signed, to_v2(required))
    return PaymentPayload(1, SCHEME, required.network, signed)


def payment_header(private_key: str | bytes, required: PaymentRequirements, **options: Any) -> str:
    """The header value paying for `required` (options as `authorize`'s)."""
    return encode_payment(authorize(private_key, required, **options))


def pay_challenge(private_key: str | bytes, body: bytes | str, network: str | None = None) -> str:
    """A 402 response body in, the `X-PAYMENT` value that answers it out."""
    return payment_header(private_key, choose(decode_challenge(body).accepts, network))
