"""x402 on a real local chain: FleetUSD deployed on eth-tester's EVM, a payer's EIP-712
signature, the facilitator over HTTP (uvicorn on a free loopback port) verifying and
settling, and balances read straight from the chain with calldata built here, not through
the code under test. Every refusal the gateway and the facilitator make, and the contract's
own checks where they are the last line."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_utils import keccak
from msgspec.structs import replace

from billing import x402
from billing.x402_chain import DevChain
from billing.x402_facilitator import create_app
from billing.x402_facilitator_client import FacilitatorClient, FacilitatorError
from billing.x402_verify import SECP256K1_HALF_N, refusal
from imagefleet import procs
from imagefleet.x402_payer import authorize, pay_challenge

pytestmark = pytest.mark.fleet  # servers of its own: the facilitator (and x402-dev)

NAME, VERSION = "USD Coin", "2"
PRICE = 25_000  # micros: $0.025
SECP256K1_N = 2 * SECP256K1_HALF_N + 1


@dataclass
class Dev:
    chain: DevChain
    url: str
    facilitator: FacilitatorClient


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    chain = DevChain(NAME, VERSION)
    port = procs.free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(chain, balances=True),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",  # pyppeteer pins an old websockets package
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    procs.wait_until(lambda: server.started, 20, "the facilitator")
    url = f"http://127.0.0.1:{port}"
    with FacilitatorClient(url) as facilitator:
        yield Dev(chain, url, facilitator)
    server.should_exit = True
    thread.join(timeout=10)


def raw_call(chain: DevChain, signature: str, *words: bytes) -> int:
    """A view function's one-word answer, the calldata built by hand (32-byte words)."""
    data = keccak(text=signature)[:4] + b"".join(w.rjust(32, b"\0") for w in words)
    out = chain.tester.call({"from": chain.operator, "to": chain.asset, "data": "0x" + data.hex()})
    return int(out, 16)


def hex_bytes(value: str | bytes) -> bytes:
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def balance(chain: DevChain, address: str) -> int:
    return raw_call(chain, "balanceOf(address)", bytes.fromhex(address[2:]))


def funded_payer(chain: DevChain, amount: int = 1_000_000) -> Any:
    payer = Account.create()
    chain.mint(payer.address, amount)
    return payer


def required(chain: DevChain, pay_to: str, amount: int = PRICE) -> x402.PaymentRequirements:
    return x402.requirements(
        amount=amount,
        pay_to=pay_to,
        asset=chain.asset,
        network=chain.network,
        resource="http://127.0.0.1:8080/v1/jobs",
        description="crop",
        max_timeout_seconds=120,
        token_name=NAME,
        token_version=VERSION,
    )


def with_authorization(payment: x402.PaymentPayload, **changes: str) -> x402.PaymentPayload:
    authorization = replace(payment.payload.authorization, **changes)
    return replace(payment, payload=replace(payment.payload, authorization=authorization))


def test_a_signed_payment_verifies_settles_and_moves_balances_on_chain(dev: Dev) -> None:
    payer, payee = funded_payer(dev.chain), Account.create().address
    need = required(dev.chain, payee)
    header = pay_challenge(payer.key, x402.challenge_body([need], "payment required"))
    payment = x402.decode_payment(header)
    assert isinstance(payment, x402.PaymentPayload)
    assert refusal(payment, need, now=int(time.time()), time_limit=60) is None

    verdict = dev.facilitator.verify(payment, need)
    assert (verdict.is_valid, verdict.payer) == (True, payer.address)
    settled = dev.facilitator.settle(payment, need)
    assert settled.success, settled
    # a v1 payment: the settlement names the chain as v1 does (the dev chain's v1 name)
    assert (settled.payer, settled.network) == (payer.address, x402.DEV_NETWORK)

    assert balance(dev.chain, payer.address) == 1_000_000 - PRICE
    assert balance(dev.chain, payee) == PRICE
    nonce = bytes.fromhex(payment.payload.authorization.nonce[2:])
    used = raw_call(
        dev.chain, "authorizationState(address,bytes32)", bytes.fromhex(payer.address[2:]), nonce
    )
    assert used == 1
    # The transaction itself: mined, and its Transfer event names both parties and the value.
    receipt = dev.chain.tester.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1
    transfer = keccak(text="Transfer(address,address,uint256)")
    logs = [log for log in receipt["logs"] if hex_bytes(log["topics"][0]) == transfer]
    assert len(logs) == 1
    assert [hex_bytes(t)[-20:].hex() for t in logs[0]["topics"][1:]] == [
        payer.address[2:].lower(),
        payee[2:].lower(),
    ]
    assert int.from_bytes(hex_bytes(logs[0]["data"]), "big") == PRICE
    # What the gateway sends back in X-PAYMENT-RESPONSE reads back the same.
    assert x402.decode_payment_response(x402.payment_response_header(settled)) == settled
    # The dev-only balances route agrees with the chain.
    shown = httpx.get(f"{dev.url}/balances/{payee}").json()
    assert (shown["balance"], shown["asset"]) == (PRICE, dev.chain.asset)


def test_a_v2_payment_signature_settles_too(dev: Dev) -> None:
    payer, payee = funded_payer(dev.chain), Account.create().address
    need = required(dev.chain, payee, amount=7)
    payment = x402.decode_payment(x402.encode_payment(authorize(payer.key, need, version=2)))
    assert isinstance(payment, x402.PaymentPayload) and payment.accepted is not None
    assert payment.x402_version == 2
    settled = dev.facilitator.settle(payment, need)
    assert settled.success, settled
    assert (balance(dev.chain, payer.address), balance(dev.chain, payee)) == (1_000_000 - 7, 7)


def test_the_v2_challenge_header_carries_the_same_offer_in_v2_form(dev: Dev) -> None:
    need = required(dev.chain, Account.create().address)
    document = json.loads(base64.b64decode(x402.payment_required_header([need], "pay")))
    assert document["x402Version"] == 2 and document["resource"]["url"] == need.resource
    (offer,) = document["accepts"]
    assert offer["amount"] == str(PRICE) and offer["payTo"] == need.pay_to
    assert offer["network"] == f"eip155:{dev.chain.chain_id}"
    assert offer["extra"] == {"name": NAME, "version": VERSION}


def test_a_replayed_nonce_is_refused_after_settlement_and_moves_nothing(dev: Dev) -> None:
    payer, payee = funded_payer(dev.chain), Account.create().address
    need = required(dev.chain, payee)
    payment = authorize(payer.key, need)
    assert dev.facilitator.settle(payment, need).success
    again = dev.facilitator.settle(payment, need)
    assert (again.success, again.error_reason) == (False, x402.NONCE_USED)
    assert dev.facilitator.verify(payment, need).invalid_reason == x402.NONCE_USED
    # The chain itself refuses it too, whatever a facilitator checked.
    reason = dev.chain.simulate_transfer(payment.payload.authorization, payment.payload.signature)
    assert reason is not None and "authorization is used" in reason
    assert (balance(dev.chain, payer.address), balance(dev.chain, payee)) == (
        1_000_000 - PRICE,
        PRICE,
    )


def test_a_payer_without_the_funds_is_refused(dev: Dev) -> None:
    payer, payee = funded_payer(dev.chain, amount=PRICE - 1), Account.create().address
    need = required(dev.chain, payee)
    payment = authorize(payer.key, need)
    verdict = dev.facilitator.verify(payment, need)
    assert (verdict.is_valid, verdict.invalid_reason) == (False, x402.INSUFFICIENT_FUNDS)
    settled = dev.facilitator.settle(payment, need)
    assert (settled.success, settled.error_reason) == (False, x402.INSUFFICIENT_FUNDS)
    assert balance(dev.chain, payer.address) == PRICE - 1


def _refusals(dev: Dev, payer: Any) -> dict[str, tuple[x402.PaymentPayload, Any, str]]:
    """name -> (payment, the requirements it is checked against, the reason expected)."""
    payee = Account.create().address
    need = required(dev.chain, payee)
    now = int(time.time())
    good = authorize(payer.key, need)
    other_token = replace(need, asset=Account.create().address)
    return {
        "signed by another key": (
            replace(
                good,
                payload=replace(
                    good.payload, signature=authorize(Account.create().key, need).payload.signature
                ),
            ),
            need,
            x402.BAD_SIGNATURE,
        ),
        "value raised after signing": (
            with_authorization(good, value=str(PRICE * 10)),
            need,
            x402.BAD_SIGNATURE,
        ),
        "signed for another token": (authorize(payer.key, other_token), need, x402.BAD_SIGNATURE),
        "wrong payee": (
            authorize(payer.key, replace(need, pay_to=Account.create().address)),
            need,
            x402.RECIPIENT_MISMATCH,
        ),
        "wrong network": (replace(good, network="base"), need, x402.INVALID_NETWORK),
        "underpaid": (
            authorize(payer.key, replace(need, max_amount_required=str(PRICE - 1))),
            need,
            x402.VALUE_TOO_LOW,
        ),
        "expired": (authorize(payer.key, need, valid_for=-10), need, x402.EXPIRES_TOO_SOON),
        "not yet valid": (
            authorize(payer.key, need, now=now + 3600 + 600),
            need,
            x402.NOT_YET_VALID,
        ),
        "other scheme": (replace(good, scheme="upto"), need, x402.UNSUPPORTED_SCHEME),
        "malformed nonce": (with_authorization(good, nonce="0x1234"), need, x402.INVALID_PAYLOAD),
    }


REFUSALS = [
    "signed by another key",
    "value raised after signing",
    "signed for another token",
    "wrong payee",
    "wrong network",
    "underpaid",
    "expired",
    "not yet valid",
    "other scheme",
    "malformed nonce",
]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_payment_is_refused_locally_and_by_the_facilitator(dev: Dev, case: str) -> None:
    payer = funded_payer(dev.chain)
    payment, need, reason = _refusals(dev, payer)[case]
    found = refusal(payment, need, now=int(time.time()), time_limit=60)
    assert found is not None and found.reason == reason, found
    verdict = dev.facilitator.verify(payment, need)
    assert (verdict.is_valid, verdict.invalid_reason) == (False, reason)
    settled = dev.facilitator.settle(payment, need)
    assert (settled.success, settled.error_reason) == (False, reason)
    assert balance(dev.chain, payer.address) == 1_000_000


def test_the_facilitator_settles_only_its_own_token(dev: Dev) -> None:
    payer = funded_payer(dev.chain)
    need = required(dev.chain, Account.create().address)
    payment = authorize(payer.key, need)
    elsewhere = replace(need, asset=Account.create().address)
    assert dev.facilitator.verify(payment, elsewhere).invalid_reason == x402.ASSET_MISMATCH
    renamed = replace(need, extra={"name": "USDC", "version": VERSION})
    assert dev.facilitator.verify(payment, renamed).invalid_reason == x402.INVALID_REQUIREMENTS


def test_the_window_must_outlast_the_jobs_time_limit(dev: Dev) -> None:
    payer = funded_payer(dev.chain)
    need = required(dev.chain, Account.create().address)
    now = int(time.time())
    payment = authorize(payer.key, need, now=now, valid_for=120)
    assert refusal(payment, need, now=now, time_limit=120) is None
    found = refusal(payment, need, now=now, time_limit=121)
    assert found is not None and found.reason == x402.EXPIRES_TOO_SOON
    # A v2 payment whose `accepted` names another asset is refused for that, by name.
    v2 = authorize(payer.key, need, now=now, version=2)
    assert v2.accepted is not None
    other = replace(v2, accepted=replace(v2.accepted, asset=Account.create().address))
    found = refusal(other, need, now=now, time_limit=60)
    assert found is not None and found.reason == x402.ASSET_MISMATCH


def test_the_malleable_twin_of_a_good_signature_is_refused_here_and_on_chain(dev: Dev) -> None:
    payer = funded_payer(dev.chain)
    need = required(dev.chain, Account.create().address)
    payment = authorize(payer.key, need)
    raw = bytes.fromhex(payment.payload.signature[2:])
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    bad = replace(payment, payload=replace(payment.payload, signature="0x" + twin.hex()))
    found = refusal(bad, need, now=int(time.time()), time_limit=60)
    assert found is not None and found.reason == x402.BAD_SIGNATURE
    reason = dev.chain.simulate_transfer(bad.payload.authorization, bad.payload.signature)
    assert reason is not None and "'s' value" in reason
    # ... while the original is good on chain (the twin recovers the same key in ecrecover).
    assert (
        dev.chain.simulate_transfer(payment.payload.authorization, payment.payload.signature)
        is None
    )


def test_supported_names_the_chain(dev: Dev) -> None:
    kinds = dev.facilitator.supported().kinds
    assert {(k.x402_version, k.scheme, k.network) for k in kinds} == {
        (1, "exact", x402.DEV_NETWORK),  # v1 names networks; v2 by CAIP-2
        (2, "exact", dev.chain.network),
    }


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"paymentPayload": {}}', b'{"paymentRequirements": {}}'],
    ids=["not json", "array", "no requirements", "no payload"],
)
def test_the_facilitator_answers_garbage_with_a_refusal(dev: Dev, body: bytes) -> None:
    for path, verdict in (("/verify", "isValid"), ("/settle", "success")):
        response = httpx.post(dev.url + path, content=body)
        assert response.status_code == 400
        assert response.json()[verdict] is False
        assert response.json()["invalidReason" if path == "/verify" else "errorReason"] in (
            x402.INVALID_PAYLOAD,
            x402.INVALID_REQUIREMENTS,
        )


def test_an_unreachable_facilitator_is_an_error_not_a_verdict(dev: Dev) -> None:
    need = required(dev.chain, Account.create().address)
    payment = authorize(Account.create().key, need)
    with FacilitatorClient(f"http://127.0.0.1:{procs.free_port()}") as nowhere:
        with pytest.raises(FacilitatorError):
            nowhere.verify(payment, need)


def test_x402_dev_serves_a_funded_payer_and_settles(tmp_path: Path) -> None:
    """`imagefleet x402-dev` as `up` would start it: its payer file, then a real payment."""
    port = procs.free_port()
    payer_file = tmp_path / "x402-payer.json"
    payer_file.write_text('{"stale": "a killed run\'s"}')
    child = procs.spawn(
        "x402-dev",
        [sys.executable, "-m", "imagefleet.cli", "x402-dev", "--port", str(port)]
        + ["--var-dir", str(tmp_path)],
        env={**os.environ, "FLEET_LOG_LEVEL": "WARNING"},
        log_file=tmp_path / "x402-dev.log",
    )
    ready = "x402-dev: ready"
    try:
        procs.wait_until(
            lambda: ready in (tmp_path / "x402-dev.log").read_text() or not child.alive(),
            60,
            "x402-dev",
        )
        assert child.alive(), (tmp_path / "x402-dev.log").read_text()[-3000:]
        info = json.loads(payer_file.read_text())
        assert oct(payer_file.stat().st_mode & 0o777) == "0o600"
        assert Account.from_key(info["privateKey"]).address == info["address"]
        assert info["network"] == f"eip155:{info['chainId']}"
        url = info["facilitatorUrl"]
        assert url == f"http://127.0.0.1:{port}"
        need = x402.requirements(
            amount=1_500,
            pay_to=info["payTo"],
            asset=info["asset"],
            network=info["network"],
            resource="r",
            description="d",
            max_timeout_seconds=90,
            token_name=info["name"],
            token_version=info["version"],
        )
        with FacilitatorClient(url) as facilitator:
            assert facilitator.settle(authorize(info["privateKey"], need), need).success
        held = {
            who: httpx.get(f"{url}/balances/{info[who]}").json()["balance"]
            for who in ("address", "payTo")
        }
        assert held == {"address": 100_000_000 - 1_500, "payTo": 1_500}
    finally:
        child.stop(grace=10)
    assert not payer_file.exists()
