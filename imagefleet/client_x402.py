"""x402 for the clients' `payer_key=`: spotting a `402` challenge, answering it with a
signed `X-PAYMENT` (imagefleet.x402_payer), and reading a payer key given as hex or as a
file (the dev payer file `var/x402-payer.json`, or a file holding the hex).

Signing needs eth-account (`pip install 'imagefleet[x402]'`); it is imported when a client
with a payer key is made, never by `import imagefleet.client`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import replace
from pathlib import Path

import httpx

from imagefleet.client_requests import Request

PAYMENT = "X-PAYMENT"
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class PayerKeyError(ValueError):
    """A payer key that cannot be used: not 32 bytes of hex, or no eth-account to sign."""


def payer_address(private_key: str) -> str:
    """The address `private_key` pays from (checks the key, and that signing can work)."""
    if importlib.util.find_spec("eth_account") is None:
        raise PayerKeyError("paying with x402 needs eth-account: pip install 'imagefleet[x402]'")
    if not _HEX_KEY.fullmatch(private_key.strip()):
        raise PayerKeyError("an x402 payer key is 32 bytes of hex (0x and 64 hex digits)")
    from imagefleet.x402_payer import address_of

    return address_of(private_key.strip())


def challenge_of(resp: httpx.Response) -> bytes | None:
    """The body of an x402 `402` challenge (`x402Version` and `accepts`), else None: a 402
    that is no challenge (an account short of credit, a paid job whose settlement failed)
    is not paid again."""
    if resp.status_code != 402:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and "x402Version" in body and body.get("accepts"):
        return resp.content
    return None


def paid(req: Request, private_key: str, challenge: bytes) -> Request:
    """`req` again, carrying the `X-PAYMENT` that answers `challenge`."""
    from imagefleet.x402_payer import pay_challenge

    return replace(
        req, headers={**(req.headers or {}), PAYMENT: pay_challenge(private_key, challenge)}
    )


def read_payer_key(value: str) -> str:
    """A payer key from the command line: hex itself, or a file holding it, either a JSON
    object with `privateKey` (x402-dev's `var/x402-payer.json`) or the hex alone."""
    text = value.strip()
    if not _HEX_KEY.fullmatch(text):
        path = Path(text).expanduser()
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise PayerKeyError(f"{value}: neither a hex key nor a readable file ({exc})") from None
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["privateKey"]).strip()
            except (ValueError, KeyError, TypeError):
                raise PayerKeyError(f"{path}: a JSON payer file has a `privateKey`") from None
    if not _HEX_KEY.fullmatch(text):
        raise PayerKeyError(f"{value}: an x402 payer key is 32 bytes of hex (0x and 64 digits)")
    return text if text.startswith("0x") else "0x" + text
