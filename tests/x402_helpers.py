"""One fleet on its x402 dev chain (`FLEET_X402=dev`) for the client and the docs' tests:
the fixture `x402_fleet` (module-scoped: import `x402_fleet_fixture`), the dev payer file,
balances from the dev facilitator, and the price of a resize computed from the operations'
published price, independently of the gateway's quote."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fleet_harness import Fleet, start_fleet

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
