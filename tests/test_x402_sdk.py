"""The official x402 SDK (`x402` on PyPI, Coinbase's) as the payer, against a FLEET_X402=dev
fleet, both versions of the HTTP transport: v2 (the `PAYMENT-REQUIRED` header answered with
`PAYMENT-SIGNATURE`, settled with `PAYMENT-RESPONSE`) and v1 (the JSON body answered with
`X-PAYMENT`, settled with `X-PAYMENT-RESPONSE`), its settlement read back by the SDK itself,
the money moved on chain, and the challenge as the SDK reads it (an absolute resource URL,
v1 network names, error texts naming the header the caller used).

The SDK pays the dev token only with `set_spend_controls` (it is no default asset), and in
v1 only on a chain its name table knows: the dev chain's v1 name is added to that table, as
docs/payments.md tells SDK users to."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402 import x402Client  # the dev extra installs it
from x402.http import x402HTTPClient
from x402.http.clients.httpx import x402AsyncTransport
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.mechanisms.evm.v1 import constants as v1_constants

from billing.x402 import DEV_CHAIN_ID, DEV_NETWORK
from tests.fleet_harness import Fleet
from tests.images import decode, encode, photo_like
from tests.x402_helpers import balance, fund, operation_price, payer_of, x402_fleet_fixture

pytestmark = pytest.mark.fleet
__all__ = ["x402_fleet_fixture"]
WIDTH, HEIGHT = 1200, 900


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(photo_like(WIDTH, HEIGHT), "png")


@pytest.fixture
def dev_name_known(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK's v1 name table with the dev chain in it (what an SDK user adds)."""
    monkeypatch.setitem(v1_constants.V1_NETWORK_CHAIN_IDS, DEV_NETWORK, DEV_CHAIN_ID)
    yield


def sdk_client(account: LocalAccount) -> x402Client:
    client, signer = x402Client(), EthAccountSigner(account)
    register_exact_evm_client(client, signer)  # v2: eip155:*, v1: the SDK's names
    if DEV_NETWORK in v1_constants.V1_NETWORK_CHAIN_IDS:
        from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1

        client.register_v1(DEV_NETWORK, ExactEvmSchemeV1(signer))
    client.set_spend_controls({"allowed_assets": True})  # the dev token is no default asset
    return client


class V1Only(httpx.AsyncBaseTransport):
    """The fleet as a v1-only server: its responses without the v2 `PAYMENT-REQUIRED`
    header, so the SDK reads the v1 body and pays with `X-PAYMENT`."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers)
        response = await self.inner.handle_async_request(request)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"payment-required"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=response.stream,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def pay(
    account: LocalAccount,
    url: str,
    body: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.Response:
    """One POST through the SDK's httpx transport (it answers a 402 by itself)."""

    async def go() -> httpx.Response:
        paying = x402AsyncTransport(sdk_client(account), transport)
        async with httpx.AsyncClient(transport=paying, timeout=120) as http:
            return await http.post(url, json=body)

    return asyncio.run(go())


def funded(fleet: Fleet, amount: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    fund(payer_of(fleet), account.address, amount)
    return account


def settlement_of(response: httpx.Response) -> Any:
    """The settlement as the SDK reads it (`PAYMENT-RESPONSE`, else `X-PAYMENT-RESPONSE`)."""
    return x402HTTPClient(x402Client()).get_payment_settle_response(response.headers.get)


def test_v2_the_sdk_pays_gets_the_output_and_reads_payment_response(
    x402_fleet: Fleet, photo: bytes
) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, 3 * price)
    payee_before = balance(payer, payer["payTo"])
    body = {"file": {"inline": base64.b64encode(photo).decode()}, "sigma": 1.5}
    reply = pay(account, f"{x402_fleet.base_url}/v1/image/sharpen", body)
    assert reply.status_code == 200, reply.text
    assert "PAYMENT-RESPONSE" in reply.headers and "X-PAYMENT-RESPONSE" not in reply.headers
    settled = settlement_of(reply)
    assert settled.success and settled.payer == account.address
    assert settled.network == payer["network"] and settled.transaction.startswith("0x")
    assert decode(base64.b64decode(reply.json()["inline"])).shape[:2] == (HEIGHT, WIDTH)
    assert balance(payer, account.address) == 2 * price  # exactly the price moved, on chain
    assert balance(payer, payer["payTo"]) == payee_before + price


def test_v2_the_sdk_pays_a_job_and_gets_its_inline_data(x402_fleet: Fleet, photo: bytes) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, price)
    spec = {"operation": "sharpen", "input": {"inline": base64.b64encode(photo).decode()}}
    reply = pay(account, f"{x402_fleet.base_url}/v1/jobs?wait=60", {**spec, "inline": True})
    assert reply.status_code == 200, reply.text
    job = reply.json()
    assert job["payment"]["state"] == "settled" and settlement_of(reply).success
    assert "PAYMENT-RESPONSE" in reply.headers
    assert decode(base64.b64decode(job["result"]["data_base64"])).shape[:2] == (HEIGHT, WIDTH)
    assert balance(payer, account.address) == 0


def test_v1_the_sdk_pays_a_v1_only_server_with_network_names(
    x402_fleet: Fleet, photo: bytes, dev_name_known: None
) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, price)
    body = {"file": {"inline": base64.b64encode(photo).decode()}}
    v1_only = V1Only()
    reply = pay(account, f"{x402_fleet.base_url}/v1/image/sharpen", body, v1_only)
    assert reply.status_code == 200, reply.text
    assert [h for h in v1_only.sent if "x-payment" in h]  # it paid with the v1 header
    assert not [h for h in v1_only.sent if "payment-signature" in h]
    assert "X-PAYMENT-RESPONSE" in reply.headers and "PAYMENT-RESPONSE" not in reply.headers
    settled = settlement_of(reply)
    assert settled.success and settled.network == DEV_NETWORK == payer["networkV1"]
    assert decode(base64.b64decode(reply.json()["inline"])).shape[:2] == (HEIGHT, WIDTH)
    assert balance(payer, account.address) == 0


def test_the_challenge_as_the_sdk_reads_it(x402_fleet: Fleet, photo: bytes) -> None:
    from x402.schemas import PaymentRequired
    from x402.schemas.v1 import PaymentRequiredV1

    payer = payer_of(x402_fleet)
    url = f"{x402_fleet.base_url}/v1/image/sharpen"
    body = {"file": {"inline": base64.b64encode(photo).decode()}}
    reply = httpx.post(url, json=body, timeout=60)
    assert reply.status_code == 402
    v2 = x402HTTPClient(x402Client()).get_payment_required_response(reply.headers.get)
    assert isinstance(v2, PaymentRequired) and v2.resource is not None
    assert v2.resource.url == url  # absolute, from FLEET_PUBLIC_URL
    assert v2.error == "PAYMENT-SIGNATURE header is required"
    assert v2.accepts[0].network == payer["network"]  # v2: CAIP-2
    v1 = PaymentRequiredV1.model_validate(reply.json())
    assert v1.error == "X-PAYMENT header is required"
    assert v1.accepts[0].network == DEV_NETWORK and v1.accepts[0].resource == url


@pytest.mark.parametrize("header", ["PAYMENT-SIGNATURE", "X-PAYMENT"])
def test_a_refusal_names_the_header_the_caller_used(
    x402_fleet: Fleet, photo: bytes, header: str
) -> None:
    body = {"file": {"inline": base64.b64encode(photo).decode()}}
    reply = httpx.post(
        f"{x402_fleet.base_url}/v1/image/sharpen",
        json=body,
        headers={header: "not*base64"},
        timeout=60,
    )
    assert reply.status_code == 402
    expected = f"invalid_payload: the {header} header is not base64"
    v2 = json.loads(base64.b64decode(reply.headers["PAYMENT-REQUIRED"]))
    assert reply.json()["error"] == v2["error"] == expected
