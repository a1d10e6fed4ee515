"""x402's `exact` scheme on EVM, the checks: the EIP-712 typed data of EIP-3009's
TransferWithAuthorization, signing and recovering it (eth-account, imported where used, so a
plain client install loads billing.x402 without it), and `refusal`: every check a server
can make without the chain or Redis. Settings-free: every value is an argument.
"""

from __future__ import annotations

import re
from typing import Any

from billing.x402 import (
    ADDRESS,
    ASSET_MISMATCH,
    BAD_SIGNATURE,
    EXPIRES_TOO_SOON,
    INVALID_NETWORK,
    INVALID_PAYLOAD,
    INVALID_REQUIREMENTS,
    INVALID_VERSION,
    NOT_YET_VALID,
    RECIPIENT_MISMATCH,
    SCHEME,
    UINT,
    UNSUPPORTED_SCHEME,
    VALUE_TOO_LOW,
    Authorization,
    PaymentPayload,
    PaymentRequirements,
    Refusal,
    chain_id,
)

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_NONCE = re.compile(r"0x[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")

TRANSFER_WITH_AUTHORIZATION = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def typed_data(
    authorization: Authorization, *, name: str, version: str, chain: int, asset: str
) -> dict[str, Any]:
    """EIP-712 typed data of a TransferWithAuthorization under the token's domain."""
    return {
        "types": {
            "EIP712Domain": EIP712_DOMAIN,
            "TransferWithAuthorization": TRANSFER_WITH_AUTHORIZATION,
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain,
            "verifyingContract": asset.lower(),
        },
        "message": {
            "from": authorization.from_.lower(),  # any case: EIP-55 is not asked of payers
            "to": authorization.to.lower(),
            "value": int(authorization.value),
            "validAfter": int(authorization.valid_after),
            "validBefore": int(authorization.valid_before),
            "nonce": bytes.fromhex(authorization.nonce[2:]),
        },
    }


def sign(typed: dict[str, Any], private_key: str | bytes) -> str:
    """The 65-byte signature (r, s, v) of EIP-712 typed data, as 0x hex."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(typed: dict[str, Any], signature: str) -> str | None:
    """The address that signed `typed`, or None for a malformed or malleable signature
    (high s, v not 27/28: what the token contract refuses too)."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    if not _SIGNATURE.fullmatch(signature):
        return None
    raw = bytes.fromhex(signature[2:])
    if int.from_bytes(raw[32:64], "big") > SECP256K1_HALF_N or raw[64] not in (27, 28):
        return None
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=raw))
    except Exception:  # eth-keys' BadSignature, ValueError: an unusable signature
        return None


def _same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _malformed(authorization: Authorization, signature: str) -> str | None:
    """Which field of the payload is not of its form, if any."""
    for field, value, form in (
        ("from", authorization.from_, ADDRESS),
        ("to", authorization.to, ADDRESS),
        ("value", authorization.value, UINT),
        ("validAfter", authorization.valid_after, UINT),
        ("validBefore", authorization.valid_before, UINT),
        ("nonce", authorization.nonce, _NONCE),
        ("signature", signature, _SIGNATURE),
    ):
        if not form.fullmatch(value) or (form is UINT and int(value) >= 2**256):
            return field
    return None


def refusal(
    payment: PaymentPayload, required: PaymentRequirements, *, now: int, time_limit: float
) -> Refusal | None:
    """Why `payment` does not pay for `required`, or None: scheme, network, asset and payee,
    amount >= the required, validAfter <= now, validBefore >= now + the job's time limit,
    and the EIP-712 signer is `from`. Not here: the nonce and the balance (Redis, chain)."""
    if payment.x402_version not in (1, 2):
        return Refusal(INVALID_VERSION, f"x402 version {payment.x402_version} is not spoken here")
    if payment.scheme != SCHEME or required.scheme != SCHEME:
        return Refusal(UNSUPPORTED_SCHEME, f"only the `{SCHEME}` scheme is taken")
    chain = chain_id(required.network)
    extra = required.extra or {}
    name, version = extra.get("name"), extra.get("version")
    if chain is None or not ADDRESS.fullmatch(required.asset):
        return Refusal(INVALID_REQUIREMENTS, f"unknown network {required.network!r} or asset")
    if not (ADDRESS.fullmatch(required.pay_to) and UINT.fullmatch(required.max_amount_required)):
        return Refusal(INVALID_REQUIREMENTS, "the requirements' payee or amount is malformed")
    if not (isinstance(name, str) and isinstance(version, str)):
        return Refusal(INVALID_REQUIREMENTS, "the requirements lack the token's name and version")
    if chain_id(payment.network) != chain:
        return Refusal(INVALID_NETWORK, f"payment on {payment.network!r}, not {required.network}")
    if payment.accepted is not None:
        accepted = payment.accepted
        if chain_id(accepted.network) != chain or accepted.scheme != SCHEME:
            return Refusal(INVALID_NETWORK, f"accepted {accepted.network!r}/{accepted.scheme!r}")
        if not _same_address(accepted.asset, required.asset):
            return Refusal(ASSET_MISMATCH, f"accepted asset {accepted.asset}, not {required.asset}")
        if not _same_address(accepted.pay_to, required.pay_to):
            return Refusal(RECIPIENT_MISMATCH, f"accepted payee {accepted.pay_to}")
    authorization, signature = payment.payload.authorization, payment.payload.signature
    if field := _malformed(authorization, signature):
        return Refusal(INVALID_PAYLOAD, f"the authorization's `{field}` is malformed")
    if not _same_address(authorization.to, required.pay_to):
        return Refusal(RECIPIENT_MISMATCH, f"pays {authorization.to}, not {required.pay_to}")
    value, minimum = int(authorization.value), int(required.max_amount_required)
    if value < minimum:
        return Refusal(VALUE_TOO_LOW, f"authorizes {value}, the call costs {minimum}")
    if int(authorization.valid_after) > now:
        return Refusal(NOT_YET_VALID, f"valid only after {authorization.valid_after} (now {now})")
    if int(authorization.valid_before) < now + time_limit:
        return Refusal(
            EXPIRES_TOO_SOON,
            f"expires at {authorization.valid_before}, before now ({now}) + the time limit"
            f" ({time_limit:g} s)",
        )
    typed = typed_data(authorization, name=name, version=version, chain=chain, asset=required.asset)
    signer = recover(typed, signature)
    if signer is None or not _same_address(signer, authorization.from_):
        return Refusal(BAD_SIGNATURE, f"the signature is not {authorization.from_}'s")
    return None
