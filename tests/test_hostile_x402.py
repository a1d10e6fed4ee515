"""x402 as a hostile payer would use it, against a FLEET_X402=dev fleet with the official x402
SDK as the client (v2 unless said), balances read on chain:

- six paid `sharpen` jobs sent at once from a wallet holding two prices buy exactly two: the
  wallet's authorized-but-unsettled total is counted against its balance at admission, so
  four are refused `insufficient_funds` before any work (was: all six run and answered
  `data_base64`, two settled);
- nothing of a job is handed over before its payment is settled (the job's result, its
  inline data, a signed output URL, the synchronous answer), and a settlement that then
  fails hands nothing over ever and deletes the outputs (was: the output was kept and
  shown). The stalled settlement pool (the measured case: webhooks starving it) is made
  by holding the settler's claim on the authorization in Redis;
- the dev chain's clock follows the wall clock: a payment valid from after the chain's last
  block is taken (was: refused `invalid_transaction_state` once the chain idled).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from eth_account import Account
from eth_account.signers.local import LocalAccount

from billing import x402_wallet as wallet
from billing.x402 import decode_challenge, requirements
from billing.x402_chain import DevChain
from billing.x402_facilitator import Facilitator
from billing.x402_wallet import Authorization, claim_suffix
from imagefleet.payments import SETTLING, tenant_of
from imagefleet.x402_payer import CLOCK_SKEW, authorize, payment_header
from jobs.records import JobRecord
from jobs.store import JobStore
from storage import open_store, tenant_key
from tests.fleet_harness import Fleet, start_fleet
from tests.images import decode, encode, photo_like
from tests.x402_helpers import (
    balance,
    chain_time,
    fund,
    operation_price,
    payer_of,
    sdk_post,
)

pytestmark = pytest.mark.fleet
WIDTH, HEIGHT = 1200, 900


@pytest.fixture(scope="module")
def x402_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A dev x402 fleet whose sweeper resends an owed settlement after 10 s idle (not 300),
    so a settlement stalled by the test comes back within the test."""
    env = {"FLEET_X402": "dev", "FLEET_REQUEUE_AFTER_SECONDS": "10"}
    fleet = start_fleet(tmp_path_factory.mktemp("x402-hostile") / "var", env)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(photo_like(WIDTH, HEIGHT), "png")


def _inline(photo: bytes) -> dict[str, str]:
    return {"inline": base64.b64encode(photo).decode()}


def funded(fleet: Fleet, amount: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    fund(payer_of(fleet), account.address, amount)
    return account


def _store(fleet: Fleet) -> JobStore:
    return JobStore(redis.Redis.from_url(fleet.redis_url), 3600)


def _jobs_of(fleet: Fleet, address: str) -> list[JobRecord]:
    return _store(fleet).newest(tenant_of(address), 100)[0]


def _keyless_job(fleet: Fleet, job_id: str) -> httpx.Response:
    return httpx.get(f"{fleet.base_url}/v1/jobs/{job_id}", timeout=30)


def _shows_nothing(reply: httpx.Response) -> None:
    """No output of any kind in a reply: no inline data, no output URL, no result."""
    for handed_over in ("data_base64", "output_url", "outputUrl", "/v1/signed/"):
        assert handed_over not in reply.text, (handed_over, reply.text[:300])
    body = reply.json()
    assert body.get("result") is None and body.get("inline") is None  # the image route's data


def test_six_payments_at_once_from_a_wallet_holding_two_prices_buy_two_jobs(
    x402_fleet: Fleet, photo: bytes
) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, 2 * price)
    payee_before = balance(payer, payer["payTo"])
    job = {"operation": "sharpen", "input": _inline(photo), "inline": True}
    requests = [(f"{x402_fleet.base_url}/v1/jobs?wait=60", job)] * 3 + [
        (f"{x402_fleet.base_url}/v1/image/sharpen", {"file": _inline(photo)})
    ] * 3
    replies = sdk_post(account, requests)

    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 402]
    assert (len(served), len(refused)) == (2, 4), [(r.status_code, r.text[:200]) for r in replies]
    for reply in refused:  # refused at admission: no job, no work, nothing handed over
        body = reply.json()
        assert body["error"].startswith("insufficient_funds: "), body["error"]
        assert "job" not in body and "id" not in body
        _shows_nothing(reply)
    for reply in served:
        body = reply.json()
        data = body["inline"] if "inline" in body else body["result"]["data_base64"]
        assert decode(base64.b64decode(data)).shape[:2] == (HEIGHT, WIDTH)
    jobs = _jobs_of(x402_fleet, account.address)
    assert len(jobs) == 2  # only the two paid for were admitted, so only they ran
    assert all(j.payment is not None and j.payment.state.value == "settled" for j in jobs)
    assert balance(payer, account.address) == 0  # on chain: both prices, no more
    assert balance(payer, payer["payTo"]) == payee_before + 2 * price


def _drain(payer: dict[str, Any], account: LocalAccount) -> None:
    """The payer spends everything elsewhere, with a transfer of its own (on chain)."""
    held = balance(payer, account.address)
    elsewhere = Account.create().address
    fund(payer, elsewhere, held, key=account.key)
    assert balance(payer, account.address) == 0 and balance(payer, elsewhere) == held


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.3)


def test_nothing_is_handed_over_before_settlement_nor_after_it_fails(
    x402_fleet: Fleet, photo: bytes
) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, 2 * price)
    payee_before = balance(payer, payer["payTo"])
    store, stalled = _store(x402_fleet), []

    def stall(context: Any) -> None:  # the settlement pool stalled: its claim is held
        authorization = context.payment_payload.payload["authorization"]
        suffix = claim_suffix(payer["asset"], authorization["from"], authorization["nonce"])
        stalled.append(SETTLING + suffix)
        store.redis.set(stalled[-1], "stalled by the test", ex=600)

    job = {"operation": "sharpen", "input": _inline(photo), "inline": True}
    image = (f"{x402_fleet.base_url}/v1/image/sharpen", {"file": _inline(photo)})
    sync: list[httpx.Response] = []
    waiter = threading.Thread(  # the synchronous route waits for a settlement that stalls
        target=lambda: sync.extend(sdk_post(account, [image], stall))
    )
    waiter.start()
    (queued,) = sdk_post(account, [(f"{x402_fleet.base_url}/v1/jobs", job)], stall)
    assert queued.status_code == 202, queued.text
    _wait(lambda: len(_jobs_of(x402_fleet, account.address)) == 2, 60, "both jobs admitted")
    ids = [j.id for j in _jobs_of(x402_fleet, account.address)]
    _wait(
        lambda: all(_keyless_job(x402_fleet, i).json()["status"] == "succeeded" for i in ids),
        90,
        "both jobs succeeded",
    )
    for job_id in ids:  # done, not settled: the payer sees no result on any route
        record = store.get(job_id)
        assert record is not None and record.result is not None  # the fleet keeps it
        assert "data_base64" in record.result or "output" in record.result
        reply = _keyless_job(x402_fleet, job_id)
        _shows_nothing(reply)
        view = reply.json()
        assert view["payment"]["state"] == "authorized"
        assert view["result_withheld"].startswith("payment_pending: ")
    records = [r for r in map(store.get, ids) if r is not None and r.result is not None]
    outputs = [tenant_key(r.tenant, r.result["output"]) for r in records if r.result]
    objects = open_store(f"file://{x402_fleet.var_dir / 'objects'}")
    assert all(objects.stat(key) is not None for key in outputs) and len(outputs) == 2

    _drain(payer, account)  # the funds leave before the settlement comes
    store.redis.delete(*stalled)  # the pool comes back: the sweeper sends the settlements

    def refused() -> bool:
        views = [_keyless_job(x402_fleet, i).json() for i in ids]
        return all(v["payment"]["state"] == "refused" for v in views)

    _wait(refused, 120, "both settlements refused")
    waiter.join(timeout=120)
    (answer,) = sync
    assert answer.status_code == 402, answer.text  # the synchronous route: no output
    assert answer.json()["error"]["code"] == "PAYMENT_REQUIRED"
    _shows_nothing(answer)
    for job_id in ids:
        reply = _keyless_job(x402_fleet, job_id)
        _shows_nothing(reply)
        view = reply.json()
        assert view["payment"]["error"] == "insufficient_funds"
        assert view["result_withheld"].startswith("payment_refused: ")
        record = store.get(job_id)
        assert record is not None and "data_base64" not in (record.result or {})
    assert all(objects.stat(key) is None for key in outputs)  # the outputs are deleted
    assert balance(payer, payer["payTo"]) == payee_before  # nothing was paid: nothing given


def test_the_dev_chain_keeps_the_wall_clock_when_idle(x402_fleet: Fleet, photo: bytes) -> None:
    payer, price = payer_of(x402_fleet), operation_price(x402_fleet, "sharpen", WIDTH, HEIGHT)
    account = funded(x402_fleet, price)
    _wait(lambda: time.time() - chain_time(payer) >= 15, 60, "the chain idle for 15 s")
    url, body = f"{x402_fleet.base_url}/v1/image/sharpen", {"file": _inline(photo)}
    asked = decode_challenge(httpx.post(url, json=body, timeout=60).content).accepts[0]
    now = int(time.time())
    header = payment_header(account.key, asked, now=now + CLOCK_SKEW - 5)  # valid from now-5
    assert now - 5 > chain_time(payer)  # valid only after the chain's last block
    reply = httpx.post(url, json=body, headers={"X-PAYMENT": header}, timeout=120)
    assert reply.status_code == 200, reply.text
    assert balance(payer, account.address) == 0


def test_the_dev_chain_mines_at_the_clocks_time_before_a_transfer() -> None:
    later = time.time() + 3600  # an hour idle, as the chain sees it
    chain = DevChain(clock=lambda: later)
    facilitator = Facilitator(chain, clock=lambda: later)
    payer: LocalAccount = Account.create()
    chain.mint(payer.address, 1000)
    asked = requirements(
        amount=1000,
        pay_to=Account.create().address,
        asset=chain.asset,
        network=chain.network,
        resource="urn:test",
        description="",
        max_timeout_seconds=600,
        token_name=chain.name,
        token_version=chain.version,
    )
    payment = authorize(payer.key, asked, now=int(later) + CLOCK_SKEW - 60)  # from later-60
    assert chain.timestamp() < int(later) - 60  # the last block is an hour older
    settled = facilitator.settle(payment, asked)
    assert settled["success"], settled
    assert chain.timestamp() >= int(later) and chain.balance_of(payer.address) == 0


def test_the_wallet_ledger_counts_open_authorizations_until_settled_or_expired(
    x402_fleet: Fleet,
) -> None:
    """billing/x402_wallet.py on the fleet's Redis, for a token of its own (no other test's)."""
    client = redis.Redis.from_url(x402_fleet.redis_url)
    asset, payer, now = "0x" + "a1" * 20, Account.create().address, int(time.time())

    def authorization(nonce: str, amount: int, valid_for: int = 600) -> Authorization:
        return Authorization(asset, payer, "0x" + nonce * 64, amount, now + valid_for)

    first, second, third = authorization("1", 600), authorization("2", 400), authorization("3", 1)
    assert wallet.claim(client, first, 1000, now, "job_a") == wallet.Claim(True, False, 0)
    assert wallet.claim(client, second, 1000, now, "job_b") == wallet.Claim(True, False, 600)
    assert wallet.claim(client, third, 1000, now, "job_c") == wallet.Claim(False, False, 1000)
    assert wallet.claim(client, first, 10**9, now, "again") == wallet.Claim(False, True, 0)
    assert client.get(first.claim_key) == b"job_a"
    wallet.close(client, asset, payer, first.nonce)  # settled: its funds are spent, not held
    assert wallet.claim(client, third, 401, now, "job_c").claimed
    wallet.unclaim(client, third)  # an admission that failed: the nonce may be sent again
    assert client.get(third.claim_key) is None
    # An authorization past its validBefore can never be settled: it holds nothing.
    expiring = authorization("4", 1000, valid_for=5)
    assert not wallet.claim(client, expiring, 1000, now, "job_d").claimed  # 400 still open
    wallet.close(client, asset, payer, second.nonce)
    assert wallet.claim(client, expiring, 1000, now, "job_d").claimed
    late = authorization("5", 1000)
    assert wallet.claim(client, late, 1000, now + 6, "job_e") == wallet.Claim(True, False, 0)
