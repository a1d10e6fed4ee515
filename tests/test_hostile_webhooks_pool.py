"""One tenant's slow receivers against the webhooks pool (issue 25, item 3), on a real fleet
with an x402 dev chain: tenant A's two receivers that answer a byte every 5 s, and 100
redeliveries of a job whose receiver never answers, while tenant B's webhook still arrives
within 10 s and a paid job settles. Each dripping attempt ends at the 10 s deadline and is
recorded; redeliveries past their limits are refused `429 RATE_LIMITED`; no more than
FLEET_WEBHOOK_TENANT_SLOTS of A's attempts are ever under way at once."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from billing.accounts import Accounts
from billing.x402 import decode_challenge
from imagefleet.settings import load_settings
from imagefleet.x402_payer import payment_header
from tests.fleet_harness import Fleet, start_fleet, wait_for_job
from tests.hostile_inputs import black_png, grayscale, put
from tests.receiver import Receiver
from tests.slow_receivers import ANSWER, Connections, SlowReceiver
from worker.webhook_slots import slots_key, tenant_slot
from worker.webhooks import post

DEADLINE = 10.0  # FLEET_WEBHOOK_TIMEOUT
SLOTS = 2  # FLEET_WEBHOOK_TENANT_SLOTS: of 4 threads, so A alone can never hold them all
PER_JOB = 3  # FLEET_WEBHOOK_REDELIVERIES
ATTEMPTS = 2  # FLEET_WEBHOOK_ATTEMPTS
ENV = {
    "FLEET_X402": "dev",
    "FLEET_WEBHOOKS_CONCURRENCY": "4",
    "FLEET_WEBHOOK_TIMEOUT": str(DEADLINE),
    "FLEET_WEBHOOK_TENANT_SLOTS": str(SLOTS),
    "FLEET_WEBHOOK_REDELIVERIES": str(PER_JOB),
    "FLEET_WEBHOOK_REDELIVER_RATE": "0.5",
    "FLEET_WEBHOOK_ATTEMPTS": str(ATTEMPTS),
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("webhookpool") / "var", ENV)
    yield fleet
    fleet.stop()


@pytest.fixture
def connections() -> Iterator[tuple[Connections, list[SlowReceiver]]]:
    log = Connections()
    receivers = [SlowReceiver(log, drip=5.0), SlowReceiver(log, drip=5.0), SlowReceiver(log, None)]
    yield log, receivers
    for receiver in receivers:
        receiver.stop()


def _ended(client: httpx.Client, body: dict[str, Any]) -> str:
    job = wait_for_job(client, client.post("/v1/jobs", json=body).raise_for_status().json()["id"])
    assert job["status"] == "succeeded", job
    return str(job["id"])


def _webhook_settled(client: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["webhook"]["state"] in ("delivered", "failed", "refused"):
            return job
        assert time.monotonic() < deadline, job["webhook"]
        time.sleep(0.5)


def _redeliver_until_spent(client: httpx.Client, job_id: str) -> tuple[int, list[httpx.Response]]:
    """100 redeliveries at once, then patient ones (after each Retry-After) until the job's
    own limit answers: the accepted count and every refusal."""
    accepted, refused = 0, []
    replies = [client.post(f"/v1/jobs/{job_id}/webhook/redeliver") for _ in range(100)]
    while True:
        for reply in replies:
            if reply.status_code == 202:
                accepted += 1
                assert reply.json()["redeliveries_left"] == PER_JOB - accepted
            else:
                refused.append(reply)
        last = refused[-1] if refused else None
        if last is not None and "Retry-After" not in last.headers:
            return accepted, refused
        assert accepted <= PER_JOB and len(refused) < 200
        time.sleep(float(last.headers["Retry-After"]) if last is not None else 0)
        replies = [client.post(f"/v1/jobs/{job_id}/webhook/redeliver")]


def _paid_job(fleet: Fleet) -> str:
    key = json.loads((fleet.var_dir / "x402-payer.json").read_text())["privateKey"]
    spec = {"operation": "grayscale", "input": {"inline": base64.b64encode(black_png()).decode()}}
    first = httpx.post(f"{fleet.base_url}/v1/jobs", json=spec, timeout=60)
    assert first.status_code == 402, first.text
    header = payment_header(key, decode_challenge(first.content).accepts[0])
    reply = httpx.post(
        f"{fleet.base_url}/v1/jobs", json=spec, headers={"X-PAYMENT": header}, timeout=60
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def test_slow_receivers_hold_only_their_tenants_share(
    fleet: Fleet, connections: tuple[Connections, list[SlowReceiver]]
) -> None:
    log, (drip1, drip2, silent) = connections
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    account_b, key_b = accounts.create(f"b{secrets.token_hex(4)}", 10**8)
    tenant_b = Receiver(account_b.webhook_secret)
    with fleet.client() as a, fleet.client(key_b) as b:
        put(a, "pool.png", black_png())
        put(b, "pool.png", black_png())
        dripping = [_ended(a, grayscale("pool.png", webhook_url=r.url)) for r in (drip1, drip2)]
        quiet = _ended(a, grayscale("pool.png", webhook_url=silent.url))
        accepted, refused = _redeliver_until_spent(a, quiet)

        # Meanwhile: B's webhook and a paid job's settlement, neither behind A's receivers.
        paid = _paid_job(fleet)
        b_job = _ended(b, grayscale("pool.png", webhook_url=tenant_b.url))
        ended = time.monotonic()
        calls = tenant_b.wait_for(1, timeout=DEADLINE)
        b_seconds = time.monotonic() - ended
        settled = _payment_settled(fleet, paid, timeout=60)

        recorded = [_webhook_settled(a, job, timeout=180) for job in dripping]
        a_at_once = log.most_at_once(slack=0.5)

    assert calls and calls[0]["valid"], f"B's webhook not in within {DEADLINE} s"
    assert b_seconds < DEADLINE and b_job in calls[0]["body"].decode()
    assert settled["payment"]["state"] == "settled", settled["payment"]

    # The redeliveries: the job's limit exactly, every other one refused with the code.
    assert accepted == PER_JOB, (accepted, [r.text for r in refused[:3]])
    assert len(refused) >= 100 - PER_JOB
    for reply in refused:
        assert reply.status_code == 429 and reply.json()["error"]["code"] == "RATE_LIMITED"
    assert "FLEET_WEBHOOK_REDELIVERIES" in refused[-1].json()["error"]["message"]
    assert any("Retry-After" in r.headers for r in refused)  # the account's rate, too

    # Each dripping attempt ended at the deadline (never the minutes the answer takes)
    # and was recorded as timed out; then retried, then failed.
    for job in recorded:
        deliveries = job["webhook"]["deliveries"]
        assert job["webhook"]["state"] == "failed" and len(deliveries) == ATTEMPTS, deliveries
        for delivery in deliveries:
            assert delivery["status"] is None and "timed out" in delivery["error"], delivery
            assert DEADLINE * 1000 - 100 <= delivery["latency_ms"] < (DEADLINE + 10) * 1000
    for opened, closed in log.closed():
        assert closed - opened < DEADLINE + 15, "a connection outlived the attempt's deadline"

    # A's attempts (dripping, silent, redelivered) never took more than A's share.
    assert 1 <= a_at_once <= SLOTS, a_at_once
    tenant_b.server.shutdown()


def _payment_settled(fleet: Fleet, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(f"{fleet.base_url}/v1/jobs/{job_id}", timeout=10).json()
        if job["payment"]["state"] != "authorized" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_an_accounts_slots_are_shared_across_workers_and_freed(fleet: Fleet) -> None:
    """The share as the fleet's Redis keeps it, for any worker on any machine: the cap, per
    account, and a slot freed when its attempt ends (by an exception too)."""
    client = redis.Redis.from_url(fleet.redis_url)
    cfg = load_settings({**ENV, "FLEET_VAR_DIR": str(fleet.var_dir)})
    a, b = f"a{secrets.token_hex(4)}", f"b{secrets.token_hex(4)}"
    with tenant_slot(client, a, cfg) as first, tenant_slot(client, a, cfg) as second:
        with tenant_slot(client, a, cfg) as third, tenant_slot(client, b, cfg) as other:
            assert (first, second, third, other) == (True, True, False, True)
    with pytest.raises(OSError), tenant_slot(client, a, cfg) as again:
        assert again
        raise OSError("the receiver went away")
    with tenant_slot(client, a, cfg) as one, tenant_slot(client, a, cfg) as two:
        assert one and two
    assert client.zcard(slots_key(a)) == 0


# A TLS handshake record of 80 bytes, sent a byte at a time: a TLS client waits for all of
# it, each read well inside its socket timeout.
SLOW_HELLO = b"\x16\x03\x03\x00\x50" + b"\x02" * 80


@pytest.mark.parametrize(
    ("scheme", "drip", "answer"),
    [
        ("http", None, b""),  # never answers
        ("http", 0.5, ANSWER),  # answers a byte at a time: 24 s in all
        ("https", None, b""),  # never says hello
        ("https", 0.5, SLOW_HELLO),  # says hello a byte at a time: 42 s in all
    ],
)
def test_the_deadline_holds_in_every_phase_of_an_attempt(
    scheme: str, drip: float | None, answer: bytes
) -> None:
    """Before the answer, during it, and on HTTPS during the TLS handshake: each attempt
    ends at its deadline, recorded as timed out."""
    receiver = SlowReceiver(Connections(), drip=drip, answer=answer)
    try:
        url = receiver.url.replace("http:", f"{scheme}:")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        began = time.monotonic()
        outcome = post(url, b"{}", {}, "127.0.0.1", port, "127.0.0.1", deadline=2.0)
        seconds = time.monotonic() - began
    finally:
        receiver.stop()
    assert outcome.status is None and "timed out" in str(outcome.error), outcome
    assert 2.0 <= seconds < 12.0


@pytest.fixture
def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context whose self-signed certificate for 127.0.0.1 the deliverer trusts
    (OpenSSL's default trust store follows SSL_CERT_FILE)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server


def test_the_deadline_holds_over_tls_after_the_handshake(trusted_tls: ssl.SSLContext) -> None:
    """A receiver with a certificate the fleet trusts, dripping its answer once the TLS
    session is up: cut at the deadline too; the same receiver answering at once is
    delivered (so the certificate is trusted, and the cut is the deadline's)."""
    for drip, expected in ((0.5, None), (0.001, 204)):
        receiver = SlowReceiver(Connections(), drip=drip, tls=trusted_tls)
        try:
            url = receiver.url.replace("http:", "https:")
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            began = time.monotonic()
            outcome = post(url, b"{}", {}, "127.0.0.1", port, "127.0.0.1", deadline=2.0)
            seconds = time.monotonic() - began
        finally:
            receiver.stop()
        assert outcome.status == expected, outcome
        if expected is None:
            assert "timed out" in str(outcome.error) and 2.0 <= seconds < 12.0
