"""One fleet on its x402 dev chain (`FLEET_X402=dev`) for the client and the docs' tests:
the fixture `x402_fleet` (module-scoped: import `x402_fleet_fixture`), the dev payer file,
balances from the dev facilitator, and the price of a resize computed from the operations'
published price, independently of the gateway's quote."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fleet_harness import Fleet, start_fleet

Hook = Callable[[Any], None]

# 1.92 MP: above the 1 MP minimum, so a shrink bills exactly its input's megapixels.
WIDTH, HEIGHT = 1600, 1200


@pytest.fixture(scope="module", name="x402_fleet")
def x402_fleet_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("x402") / "var", {"FLEET_X402": "dev"})
    yield fleet
    fleet.stop()


def payer_of(fleet: Fleet) -> dict[str, Any]:
    """x402-dev's payer file: privateKey, address, payTo, asset, network, facilitatorUrl."""
    document: dict[str, Any] = json.loads((fleet.var_dir / "x402-payer.json").read_text())
    return document


def balance(payer: dict[str, Any], address: str) -> int:
    """The token balance of `address` on the dev chain, in micros."""
    reply = httpx.get(f"{payer['facilitatorUrl']}/balances/{address}", timeout=10)
    return int(reply.raise_for_status().json()["balance"])


def balances(payer: dict[str, Any]) -> tuple[int, int]:
    """(the payer's, the payee's)."""
    return balance(payer, payer["address"]), balance(payer, payer["payTo"])


def resize_price(fleet: Fleet, width: int, height: int) -> int:
    """What shrinking a width x height input costs, from GET /v1/operations' per-MP price."""
    with fleet.client() as client:
        operations = client.get("/v1/operations").raise_for_status().json()["operations"]
    price = next(o for o in operations if o["name"] == "resize")["price"]
    megapixels = max(1.0, width * height / 1e6)
    return math.ceil(price["per_mp_micros"] * megapixels)


def fund(payer: dict[str, Any], to: str, amount: int, key: str | bytes | None = None) -> str:
    """Move `amount` micros to `to` with a real transfer settled at the dev facilitator,
    signed by `key` (default: the dev payer's); its transaction."""
    from billing.x402 import requirements
    from billing.x402_facilitator_client import FacilitatorClient
    from imagefleet.x402_payer import authorize

    asked = requirements(
        amount=amount,
        pay_to=to,
        asset=payer["asset"],
        network=payer["network"],
        resource="urn:test:funding",
        description="test funding",
        max_timeout_seconds=600,
        token_name=payer["name"],
        token_version=payer["version"],
    )
    with FacilitatorClient(payer["facilitatorUrl"]) as facilitator:
        settled = facilitator.settle(authorize(key or payer["privateKey"], asked), asked)
    assert settled.success, settled
    return settled.transaction


def chain_time(payer: dict[str, Any]) -> int:
    """The dev chain's latest block time, over its JSON-RPC (`eth_getBlockByNumber`)."""
    from billing.x402_rpc import call

    block = call(payer["rpcUrl"], "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return int(block["timestamp"], 16)


def operation_price(fleet: Fleet, operation: str, width: int, height: int) -> int:
    """A per-MP operation's price for a width x height input, from GET /v1/operations."""
    with fleet.client() as client:
        operations = client.get("/v1/operations").raise_for_status().json()["operations"]
    price = next(o for o in operations if o["name"] == operation)["price"]
    return math.ceil(price["per_mp_micros"] * max(1.0, width * height / 1e6))


def sdk_post(
    account: Any, requests: list[tuple[str, dict[str, Any]]], hook: Hook | None = None
) -> list[httpx.Response]:
    """POST each (url, body) at once, each through its own SDK client paying from `account`
    (`hook` sees each payment the SDK signs, before it is sent)."""

    from x402 import x402Client
    from x402.http.clients.httpx import x402AsyncTransport
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client

    async def one(url: str, body: dict[str, Any]) -> httpx.Response:
        client = x402Client()
        register_exact_evm_client(client, EthAccountSigner(account))
        client.set_spend_controls({"allowed_assets": True})  # the dev token
        if hook is not None:
            client.on_after_payment_creation(hook)
        async with httpx.AsyncClient(transport=x402AsyncTransport(client), timeout=180) as http:
            return await http.post(url, json=body)

    async def every() -> list[httpx.Response]:
        return list(await asyncio.gather(*(one(url, body) for url, body in requests)))

    return asyncio.run(every())
