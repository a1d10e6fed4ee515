"""tests/hostile_report.py's x402 rows (issue 25), on its fleet run with FLEET_X402=dev:
six paid `sharpen` jobs sent at once by the official SDK from a wallet holding two prices
(counted: answers served, refused, any inline data handed over, what reached the payee on
chain), and a payment valid from 5 s ago after the dev chain idled 15 s."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from eth_account import Account

from billing.x402 import decode_challenge
from imagefleet.x402_payer import CLOCK_SKEW, payment_header
from tests.fleet_harness import Fleet
from tests.hostile_measure import Row
from tests.images import encode, photo_like
from tests.x402_helpers import balance, chain_time, fund, operation_price, payer_of, sdk_post

WIDTH, HEIGHT = 1200, 900


def _photo() -> str:
    return base64.b64encode(encode(photo_like(WIDTH, HEIGHT), "png")).decode()


def six_payments_two_prices(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    payer, price = payer_of(fleet), operation_price(fleet, "sharpen", WIDTH, HEIGHT)
    wallet = Account.create()
    fund(payer, wallet.address, 2 * price)
    payee_before, photo = balance(payer, payer["payTo"]), _photo()
    job: dict[str, Any] = {"operation": "sharpen", "input": {"inline": photo}, "inline": True}
    image: dict[str, Any] = {"file": {"inline": photo}}
    requests = [(f"{fleet.base_url}/v1/jobs?wait=60", job)] * 3
    requests += [(f"{fleet.base_url}/v1/image/sharpen", image)] * 3
    started = time.monotonic()
    replies = sdk_post(wallet, requests)
    row.seconds = time.monotonic() - started
    served = sum(r.status_code == 200 for r in replies)
    refused = [r.json().get("error", "") for r in replies if r.status_code == 402]
    reasons = sorted({str(e).split(":")[0] for e in refused})
    handed = sum("data_base64" in r.text or '"inline":"' in r.text for r in replies)
    row.outcome = f"{served} served, {len(refused)} refused {', '.join(reasons)}"
    row.quoted, row.charged = 6 * price, balance(payer, payer["payTo"]) - payee_before
    row.details.append(
        f"inline data in {handed} answers; wallet left {balance(payer, wallet.address)}"
    )


def idle_chain_payment(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    payer, price = payer_of(fleet), operation_price(fleet, "sharpen", WIDTH, HEIGHT)
    wallet = Account.create()
    fund(payer, wallet.address, price)
    while time.time() - chain_time(payer) < 15:  # the chain idles 15 s
        time.sleep(0.5)
    url, body = f"{fleet.base_url}/v1/image/sharpen", {"file": {"inline": _photo()}}
    asked = decode_challenge(httpx.post(url, json=body, timeout=60).content).accepts[0]
    header = payment_header(wallet.key, asked, now=int(time.time()) + CLOCK_SKEW - 5)
    started = time.monotonic()
    reply = httpx.post(url, json=body, headers={"X-PAYMENT": header}, timeout=120)
    row.seconds = time.monotonic() - started
    row.http(reply)
    row.quoted, row.charged = price, price - balance(payer, wallet.address)
