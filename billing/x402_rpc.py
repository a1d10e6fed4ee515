"""Reading the chain over Ethereum JSON-RPC (`FLEET_X402_RPC_URL`): a payer's token balance,
`balanceOf(owner)` by `eth_call` on the latest block, which the gateway counts a wallet's
open authorizations against (billing/x402_wallet.py). The dev facilitator serves the few
methods this needs at `/rpc`; on a real chain it is the chain's RPC endpoint.

An endpoint that cannot be reached or answers no number raises `RpcError` (a `503` for the
caller, never a verdict on the payment).
"""

from __future__ import annotations

import itertools

import httpx

from billing.x402 import ADDRESS

BALANCE_OF = "0x70a08231"  # keccak("balanceOf(address)")[:4]
RPC_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
_IDS = itertools.count(1)


class RpcError(RuntimeError):
    """The chain's RPC endpoint gave no usable answer."""


def balance_call(asset: str, owner: str) -> dict[str, str]:
    """The `eth_call` transaction object of `asset.balanceOf(owner)`."""
    if not (ADDRESS.fullmatch(asset) and ADDRESS.fullmatch(owner)):
        raise ValueError("an asset and an owner are 0x and 40 hex digits")
    return {"to": asset, "data": BALANCE_OF + owner[2:].lower().rjust(64, "0")}


def call(url: str, method: str, params: list[object]) -> object:
    """One JSON-RPC call's `result`."""
    body = {"jsonrpc": "2.0", "id": next(_IDS), "method": method, "params": params}
    try:
        reply = httpx.post(url, json=body, timeout=RPC_TIMEOUT)
        document = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise RpcError(f"chain RPC {method}: {exc!r}") from None
    if not isinstance(document, dict) or "result" not in document:
        error = document.get("error") if isinstance(document, dict) else document
        raise RpcError(f"chain RPC {method}: {error!r}")
    return document["result"]


def token_balance(url: str, asset: str, owner: str) -> int:
    """`owner`'s balance of the token `asset`, in its atomic units."""
    result = call(url, "eth_call", [balance_call(asset, owner), "latest"])
    try:
        return int(str(result), 16)
    except ValueError:
        raise RpcError(f"chain RPC eth_call: {result!r} is not a number") from None
