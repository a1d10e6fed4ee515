"""x402 through a real fleet on its dev chain (`FLEET_X402=dev`: a local EVM, the FleetUSD
token, a funded payer and a facilitator that settles with real transactions): the 402
challenge priced as the account path prices, a paid call served and settled on chain, every
refusal before any work, one authorization never buying two jobs even raced, a failed job
never settled, and the account path unchanged."""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from billing.x402 import PaymentRequirements, decode_challenge, decode_payment_response
from imagefleet.x402_payer import payment_header
from tests.fleet_harness import Fleet, start_fleet
from tests.images import decode, encode, photo_like

pytestmark = pytest.mark.fleet
WIDTH, HEIGHT = 2000, 1500  # 3 MP: above the 1 MP minimum


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("x402") / "var", {"FLEET_X402": "dev"})
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def payer(fleet: Fleet) -> dict[str, Any]:
    return json.loads((fleet.var_dir / "x402-payer.json").read_text())


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(photo_like(WIDTH, HEIGHT), "png")


def _body(photo: bytes, width: int = 400) -> dict[str, Any]:
    return {"file": {"inline": base64.b64encode(photo).decode()}, "width": width}


def _balance(payer: dict[str, Any], address: str) -> int:
    reply = httpx.get(f"{payer['facilitatorUrl']}/balances/{address}", timeout=10)
    return int(reply.raise_for_status().json()["balance"])


def _challenge(fleet: Fleet, body: dict[str, Any]) -> PaymentRequirements:
    reply = httpx.post(f"{fleet.base_url}/v1/image/resize", json=body, timeout=60)
    assert reply.status_code == 402, reply.text
    return decode_challenge(reply.content).accepts[0]


def _pay(fleet: Fleet, body: dict[str, Any], header: str) -> httpx.Response:
    return httpx.post(
        f"{fleet.base_url}/v1/image/resize", json=body, headers={"X-PAYMENT": header}, timeout=90
    )


def test_the_challenge_asks_the_account_paths_quote_from_the_header(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    reply = httpx.post(f"{fleet.base_url}/v1/image/resize", json=_body(photo), timeout=60)
    assert reply.status_code == 402
    body = reply.json()
    assert body["x402Version"] == 1 and body["error"]
    (asked,) = body["accepts"]
    with fleet.client() as client:
        price = client.get("/v1/operations").json()
        per_mp = next(o for o in price["operations"] if o["name"] == "resize")["price"]
        spec = {"operation": "resize", "input": _body(photo)["file"], "width": 400}
        account = client.post("/v1/jobs", json=spec)
    expected = math.ceil(per_mp["per_mp_micros"] * WIDTH * HEIGHT / 1e6)
    assert int(asked["maxAmountRequired"]) == expected
    assert account.json()["billing"]["quoted_micros"] == expected  # the same quote
    assert asked["scheme"] == "exact" and asked["payTo"] == payer["payTo"]
    assert asked["asset"] == payer["asset"] and asked["network"] == payer["networkV1"]
    assert asked["extra"] == {"name": payer["name"], "version": payer["version"]}
    assert asked["resource"] == f"{fleet.base_url}/v1/image/resize"  # an absolute URL
    v2 = json.loads(base64.b64decode(reply.headers["PAYMENT-REQUIRED"]))
    assert v2["x402Version"] == 2 and v2["accepts"][0]["amount"] == str(expected)
    assert v2["accepts"][0]["network"] == payer["network"]  # v2: CAIP-2


def test_a_paid_call_is_served_and_settled_on_chain(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    body = _body(photo)
    asked = _challenge(fleet, body)
    before = _balance(payer, payer["address"]), _balance(payer, payer["payTo"])
    reply = _pay(fleet, body, payment_header(payer["privateKey"], asked))
    assert reply.status_code == 200, reply.text
    output = decode(base64.b64decode(reply.json()["inline"]))
    assert output.shape[:2] == (300, 400)  # 2000x1500 to 400 wide
    settled = decode_payment_response(reply.headers["X-PAYMENT-RESPONSE"])
    assert settled.success and settled.transaction.startswith("0x")
    assert len(settled.transaction) == 66 and settled.payer.lower() == payer["address"].lower()
    amount = int(asked.max_amount_required)
    after = _balance(payer, payer["address"]), _balance(payer, payer["payTo"])
    assert after == (before[0] - amount, before[1] + amount)
    job = httpx.get(f"{fleet.base_url}/v1/jobs/{reply.json()['job']}", timeout=10).json()
    assert job["payment"]["state"] == "settled"
    assert job["payment"]["transaction"] == settled.transaction
    assert job["billing"]["charged_micros"] == amount and "payment_header" not in job
    # The same authorization again buys nothing.
    again = _pay(fleet, body, reply.request.headers["X-PAYMENT"])
    assert again.status_code == 402 and "nonce" in again.json()["error"]
    assert _balance(payer, payer["address"]) == after[0]


def test_one_authorization_raced_buys_one_job(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    body = _body(photo, width=200)
    header = payment_header(payer["privateKey"], _challenge(fleet, body))
    replies: list[httpx.Response] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        replies.append(_pay(fleet, body, header))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [200, 402, 402, 402]


def _refused(fleet: Fleet, body: dict[str, Any], header: str) -> str:
    reply = _pay(fleet, body, header)
    assert reply.status_code == 402, reply.text
    return str(reply.json()["error"])


def test_every_bad_payment_is_refused_before_any_work(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    body = _body(photo, width=100)
    asked = _challenge(fleet, body)
    key = payer["privateKey"]
    before = _balance(payer, payer["address"])
    amount = int(asked.max_amount_required)
    cheaper = msgspec.structs.replace(asked, max_amount_required=str(amount - 1))
    elsewhere = msgspec.structs.replace(asked, pay_to="0x" + "11" * 20)
    other_token = msgspec.structs.replace(asked, asset="0x" + "22" * 20)
    now = int(time.time())
    cases = {  # the reason expected -> a payment that should get it
        "value": payment_header(key, cheaper),
        "recipient": payment_header(key, elsewhere),
        "asset": payment_header(key, other_token, version=2),  # v2 names its asset
        "signature": payment_header(key, other_token),  # v1: signed for another token
        "valid_before": payment_header(key, asked, valid_for=5),  # shorter than the time limit
        "valid_after": payment_header(key, asked, now=now + 3600),  # not valid yet
    }
    for reason, header in cases.items():
        assert reason in _refused(fleet, body, header), reason
    # A signature that is not the payer's: the authorization's `from` changed after signing.
    forged = json.loads(base64.b64decode(payment_header(key, asked)))
    forged["payload"]["authorization"]["from"] = "0x" + "33" * 20
    forged_header = base64.b64encode(json.dumps(forged).encode()).decode()
    assert "signature" in _refused(fleet, body, forged_header)
    for garbage in (b"not base64 !", base64.b64encode(b"{"), base64.b64encode(b"[]")):
        assert "invalid" in _refused(fleet, body, garbage.decode())
    assert _balance(payer, payer["address"]) == before


def test_a_hostile_keyless_request_is_refused_before_it_is_priced(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    """No challenge (so nothing to pay for) for work the fleet would refuse an account: a
    tiny input asking for a huge output, an object key reaching into some namespace, another
    page of a one-page image; and no job, no stored input, no money moved."""
    tiny = encode(photo_like(8, 8), "png")
    cases = [
        ({**_body(tiny), "width": 60000, "height": 60000, "fit": "fill"}, 422, "IMAGE_TOO_LARGE"),
        ({"file": {"inputKey": "photo.jpg"}, "width": 100}, 400, "VALIDATION_ERROR"),
        ({"file": "../dev/photo.jpg", "width": 100}, 400, "VALIDATION_ERROR"),
    ]
    before = _balance(payer, payer["address"])
    objects = sorted(p.name for p in fleet.var_dir.rglob("*") if "x402" in str(p))
    for body, status, code in cases:
        reply = httpx.post(f"{fleet.base_url}/v1/image/resize", json=body, timeout=60)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), reply.text
        assert "PAYMENT-REQUIRED" not in reply.headers
    assert sorted(p.name for p in fleet.var_dir.rglob("*") if "x402" in str(p)) == objects
    assert _balance(payer, payer["address"]) == before


def test_a_failed_job_is_never_settled(fleet: Fleet, payer: dict[str, Any], photo: bytes) -> None:
    broken = photo[: len(photo) // 3]  # a PNG header promising 2000x1500, then nothing
    body = _body(broken)
    asked = _challenge(fleet, body)
    before = _balance(payer, payer["address"]), _balance(payer, payer["payTo"])
    reply = _pay(fleet, body, payment_header(payer["privateKey"], asked))
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "IMAGE_PARSE_FAILED"
    assert "X-PAYMENT-RESPONSE" not in reply.headers
    job = httpx.get(f"{fleet.base_url}/v1/jobs/{reply.json()['job']}", timeout=10).json()
    assert job["payment"]["state"] == "unsettled" and job["billing"]["charged_micros"] == 0
    assert job["result"] is None
    time.sleep(1)  # the webhooks pool has nothing to settle either
    assert (_balance(payer, payer["address"]), _balance(payer, payer["payTo"])) == before


def test_an_async_paid_job_is_settled_by_the_pool(
    fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    spec = {"operation": "resize", "input": _body(photo)["file"], "width": 320}
    first = httpx.post(f"{fleet.base_url}/v1/jobs", json=spec, timeout=60)
    assert first.status_code == 402
    asked = decode_challenge(first.content).accepts[0]
    header = payment_header(payer["privateKey"], asked)
    reply = httpx.post(f"{fleet.base_url}/v1/jobs", json=spec, headers={"X-PAYMENT": header})
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(f"{fleet.base_url}/v1/jobs/{job_id}", timeout=10).json()
        if job["payment"]["state"] != "authorized" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert job["status"] == "succeeded" and job["payment"]["state"] == "settled"
    assert job["result"]["width"] == 320
    # Settled: the keyless reader gets a signed URL for the output (a payer has no key).
    output = httpx.get(job["result"]["output_url"], timeout=30).raise_for_status().content
    assert decode(output).shape[1] == 320
    # The payer's job is theirs alone: an account's key does not find it.
    with fleet.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_the_account_path_is_unchanged_beside_x402(fleet: Fleet, photo: bytes) -> None:
    with fleet.client() as client:
        reply = client.post("/v1/image/resize", json=_body(photo, width=100))
        assert reply.status_code == 200 and "X-PAYMENT-RESPONSE" not in reply.headers
        job = client.get(f"/v1/jobs/{reply.json()['job']}").json()
    assert job["payment"] is None and job["billing"]["state"] == "captured"
    # A wrong key is still 401, not a payment challenge.
    bad = httpx.post(
        f"{fleet.base_url}/v1/image/resize",
        json=_body(photo),
        headers={"Authorization": "Bearer nope"},
        timeout=30,
    )
    assert bad.status_code == 401


def test_the_openapi_document_offers_x402_beside_the_key(fleet: Fleet, photo: bytes) -> None:
    document = httpx.get(f"{fleet.base_url}/openapi.json", timeout=10).json()
    assert document["components"]["securitySchemes"]["x402"]["name"] == "X-PAYMENT"
    route = document["paths"]["/v1/image/{op}"]["post"]
    assert {"x402": []} in route["security"] and {"bearer": []} in route["security"]
    assert "X-PAYMENT-RESPONSE" in route["responses"]["200"]["headers"]
    # A real challenge has every field the documented schema requires.
    schema = document["components"]["schemas"]["PaymentRequired"]
    challenge = httpx.post(f"{fleet.base_url}/v1/image/resize", json=_body(photo), timeout=60)
    assert set(schema["required"]) <= set(challenge.json())
    item = document["components"]["schemas"]["PaymentRequirements"]
    assert set(item["required"]) <= set(challenge.json()["accepts"][0])


def test_keyless_callers_are_rate_limited_by_address(tmp_path: Path, photo: bytes) -> None:
    """Without a key there is no account to limit: each client address has a bucket (here 1
    a second, bursts of 2), answered 429 with Retry-After before the body is read, while a
    caller with a key goes on."""
    slow = start_fleet(tmp_path / "var", {"FLEET_X402": "dev", "FLEET_X402_RATE_LIMIT": "1"})
    try:
        replies = [
            httpx.post(f"{slow.base_url}/v1/image/resize", json=_body(photo), timeout=60)
            for _ in range(5)
        ]
        codes = [r.status_code for r in replies]
        assert codes[:2] == [402, 402] and 429 in codes[2:], codes
        limited = next(r for r in replies if r.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        with slow.client() as client:
            assert client.post("/v1/image/resize", json=_body(photo, width=64)).status_code == 200
    finally:
        slow.stop()
