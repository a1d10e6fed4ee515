"""Issue 25's attacks on the webhooks pool, as rows of tests/hostile_report.py: tenant A's
receivers that drip one byte every 5 s, 100 redeliveries to a receiver that never answers,
and what another tenant (B) and an x402 payer see meanwhile. Every wait is capped, so the
rows measure a fleet without the fixes too. Run alone (on an x402 dev fleet, so the
settlement row runs too):

    PYTHONPATH=$PWD .venv/bin/python -m tests.hostile_webhook_attacks [--keep]
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable

import httpx
import redis

from billing.accounts import Accounts
from billing.x402 import decode_challenge
from imagefleet.x402_payer import payment_header
from tests import hostile_measure as measure
from tests.fleet_harness import Fleet, wait_for_job
from tests.hostile_inputs import black_png, grayscale, put
from tests.hostile_measure import Row, error_of
from tests.receiver import Receiver
from tests.slow_receivers import Connections, SlowReceiver

CAP = 90.0  # seconds any one wait of a row may take


def _within(seconds: float | None) -> str:
    return f"in {seconds:.1f} s" if seconds is not None else f"NOT in {CAP:g} s"


def _until(check: Callable[[], bool], seconds: float) -> float | None:
    """Seconds until `check()` held, or None if it did not within `seconds`."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if check():
            return time.monotonic() - began
        time.sleep(0.1)
    return None


def _ended(client: httpx.Client, url: str) -> str:
    reply = client.post("/v1/jobs", json=grayscale("hook.png", webhook_url=url))
    return str(wait_for_job(client, reply.raise_for_status().json()["id"])["id"])


def tenant_b_seconds(fleet: Fleet, row: Row) -> float | None:
    """A second account's job with a webhook: seconds from its end to the webhook's arrival
    (None past CAP)."""
    account, key = Accounts(redis.Redis.from_url(fleet.redis_url)).create(
        f"b{secrets.token_hex(4)}", 10**8
    )
    receiver = Receiver(account.webhook_secret)
    try:
        with fleet.client(key) as b:
            put(b, "hook.png", black_png())
            _ended(b, receiver.url)
            seconds = _until(lambda: bool(receiver.calls), CAP)
    finally:
        receiver.server.shutdown()
    row.details.append(f"tenant B's webhook {_within(seconds)} after its job ended")
    return seconds


def dripping(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    log = Connections()
    receivers = [SlowReceiver(log, drip=5.0) for _ in range(2)]
    try:
        put(client, "hook.png", black_png())
        jobs = [_ended(client, r.url) for r in receivers]
        _until(lambda: len(log.spans) >= 2, 30)  # both attempts under way
        row.seconds = tenant_b_seconds(fleet, row)
        _until(lambda: len(log.closed()) >= 2, CAP)
        spans = [round(b - a, 1) for a, b in log.closed()]
        open_for = [round(time.monotonic() - a, 1) for a, b in log.spans if b == float("inf")]
        deliveries = [client.get(f"/v1/jobs/{j}").json()["webhook"]["deliveries"] for j in jobs]
    finally:
        for receiver in receivers:
            receiver.stop()
    row.outcome = (
        f"B's webhook {_within(row.seconds)}; dripping attempts cut after {spans} s,"
        f" still open after {open_for} s"
    )
    for job, attempts in zip(jobs, deliveries, strict=True):
        row.details.append(
            f"job {job} deliveries: "
            + "; ".join(f"{d['error'] or d['status']}, {d['latency_ms']:.0f} ms" for d in attempts)
        )


def redeliveries(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    log = Connections()
    silent = SlowReceiver(log, drip=None)
    try:
        put(client, "hook.png", black_png())
        job = _ended(client, silent.url)
        began = time.monotonic()
        replies = [client.post(f"/v1/jobs/{job}/webhook/redeliver") for _ in range(100)]
        sent = time.monotonic() - began
        answers = Counter(f"{r.status_code} {error_of(r)[0]}".strip() for r in replies)
        depth = redis.Redis.from_url(fleet.redis_url).llen("webhooks")
        row.seconds = tenant_b_seconds(fleet, row)
    finally:
        silent.stop()
    accepted = answers.get("202", 0)
    row.outcome = (
        f"{dict(answers)} in {sent:.1f} s; webhooks queue {depth} deep;"
        f" B's webhook {_within(row.seconds)}"
    )
    refused = next((r for r in replies if r.status_code != 202), None)
    if refused is not None:
        row.details.append(f"first refusal: {refused.status_code} {refused.text[:200]}")
    row.details.append(
        f"{accepted} redeliveries queued, each up to 4 attempts of 10 s to a silent"
        f" receiver: {accepted * 4 * 10 / 60:.0f} min of delivery-slot time"
    )


def settlement(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    payer_file = fleet.var_dir / "x402-payer.json"
    if not payer_file.exists():
        row.outcome = "n/a: this fleet runs without x402 (python -m tests.hostile_webhook_attacks)"
        return
    log = Connections()
    receivers = [SlowReceiver(log, drip=5.0) for _ in range(2)]
    try:
        put(client, "hook.png", black_png())
        for receiver in receivers:
            _ended(client, receiver.url)
        _until(lambda: len(log.spans) >= 2, 30)
        inline = base64.b64encode(black_png()).decode()
        spec = {"operation": "grayscale", "input": {"inline": inline}}
        asked = httpx.post(f"{fleet.base_url}/v1/jobs", json=spec, timeout=60)
        key = json.loads(payer_file.read_text())["privateKey"]
        header = payment_header(key, decode_challenge(asked.content).accepts[0])
        reply = httpx.post(
            f"{fleet.base_url}/v1/jobs", json=spec, headers={"X-PAYMENT": header}, timeout=60
        ).raise_for_status()
        job_url = f"{fleet.base_url}/v1/jobs/{reply.json()['id']}"
        state: list[str] = []

        def settled() -> bool:
            state[:] = [httpx.get(job_url, timeout=10).json()["payment"]["state"]]
            return state[0] != "authorized"

        row.seconds = _until(settled, CAP)
    finally:
        for receiver in receivers:
            receiver.stop()
    row.outcome = f"payment {state[0] if state else '?'}, settlement {_within(row.seconds)}"


ATTACKS: list[tuple[str, Callable[[Fleet, httpx.Client, Row], None]]] = [
    ("25.3a two receivers dripping 1 byte / 5 s; B's webhook", dripping),
    ("25.3b 100 redeliveries to a silent receiver; B's webhook", redeliveries),
    ("25.3c x402 settlement while receivers drip", settlement),
]


def main() -> int:
    return measure.replay(ATTACKS, {"FLEET_X402": "dev"}, 15 * 60)


if __name__ == "__main__":
    sys.exit(main())
