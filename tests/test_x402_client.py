"""The Python client and the CLI paying with x402 (`payer_key=`, `--pay-with-key`) against a
real fleet on its dev chain: the 402 answered once with a signed payment, the settlement
exposed, the balances on chain moved by the price, a refused payment an ApiError, a failed
job never settled."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from billing.x402 import decode_challenge
from imagefleet.client import ApiError, AsyncClient, Client, JobResult, PayerKeyError
from imagefleet.client_x402 import read_payer_key
from jobs.geometry import ResizeJob
from jobs.spec import InputRef
from tests.fleet_harness import ROOT, Fleet
from tests.images import decode, encode, photo_like
from tests.x402_helpers import (  # noqa: F401  (x402_fleet_fixture: the fixture x402_fleet)
    HEIGHT,
    WIDTH,
    balances,
    payer_of,
    resize_price,
    x402_fleet_fixture,
)

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def payer(x402_fleet: Fleet) -> dict[str, Any]:
    return payer_of(x402_fleet)


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(photo_like(WIDTH, HEIGHT, seed=3), "png")


@pytest.fixture(scope="module")
def price(x402_fleet: Fleet) -> int:
    return resize_price(x402_fleet, WIDTH, HEIGHT)


def _settled_on_chain(job: JobResult, payer: dict[str, Any]) -> str:
    """The job's settlement is a success from the payer, its transaction the job's own."""
    settled = job.settlement
    assert settled is not None and settled.success, job.raw
    assert settled.payer.lower() == payer["address"].lower()
    assert settled.transaction.startswith("0x") and len(settled.transaction) == 66
    assert job.payment is not None and job.payment["state"] == "settled"
    assert job.payment["transaction"] == settled.transaction
    return settled.transaction


def test_the_client_pays_the_synchronous_route(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes, price: int
) -> None:
    before = balances(payer)
    with Client(x402_fleet.base_url, payer_key=payer["privateKey"]) as fleet:
        assert fleet.payer == payer["address"]
        answer = fleet.image("resize", file=photo, width=400)
        assert answer.data is not None and decode(answer.data).shape[:2] == (300, 400)
        assert answer.settlement is not None and answer.settlement.success
        job = fleet.get(answer.job)  # keyless: a payer's job is read by its id
    assert _settled_on_chain(job, payer) == answer.settlement.transaction
    assert job.billing["charged_micros"] == price
    assert balances(payer) == (before[0] - price, before[1] + price)


def test_the_client_pays_a_submitted_job_and_fetches_its_output(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes, price: int
) -> None:
    before = balances(payer)
    with Client(x402_fleet.base_url, payer_key=payer["privateKey"]) as fleet:
        job = fleet.run(ResizeJob(input=InputRef(inline=photo), width=320))
    assert job.ok and job.result is not None and job.result["width"] == 320
    _settled_on_chain(job, payer)
    output = httpx.get(job.result["output_url"], timeout=30).raise_for_status().content
    assert decode(output).shape[:2] == (240, 320)
    assert balances(payer) == (before[0] - price, before[1] + price)


def test_the_async_client_pays_and_waits_for_the_pools_settlement(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes, price: int
) -> None:
    before = balances(payer)

    async def pay() -> tuple[Any, JobResult, JobResult]:
        async with AsyncClient(x402_fleet.base_url, payer_key=payer["privateKey"]) as fleet:
            answer = await fleet.image("resize", file=photo, width=200)
            # Without ?wait the reply is 202 and the webhooks pool settles it later: `wait`
            # returns once the payment is settled, not merely once the job ended.
            queued = await fleet.submit(ResizeJob(input=InputRef(inline=photo), width=160))
            return answer, queued, await fleet.wait(queued.id, timeout=120)

    answer, queued, ended = asyncio.run(pay())
    assert answer.settlement is not None and answer.settlement.success
    assert decode(answer.data or b"").shape[:2] == (150, 200)
    assert queued.settlement is None and queued.payment is not None
    assert queued.payment["state"] == "authorized"
    assert ended.ok and ended.result is not None and ended.result["width"] == 160
    transaction = _settled_on_chain(ended, payer)
    assert transaction != answer.settlement.transaction
    assert balances(payer) == (before[0] - 2 * price, before[1] + 2 * price)


def test_a_failed_paid_job_is_not_settled_and_wait_does_not_hang(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    broken = photo[: len(photo) // 3]  # a PNG header promising the size, then nothing
    before = balances(payer)
    with Client(x402_fleet.base_url, payer_key=payer["privateKey"]) as fleet:
        job = fleet.run(ResizeJob(input=InputRef(inline=broken), width=100))
        with pytest.raises(ApiError) as raised:
            fleet.image("resize", file=broken, width=100)
    assert job.status == "failed" and job.settlement is None
    assert job.payment is not None and job.payment["state"] == "unsettled"
    assert raised.value.status == 422 and raised.value.code == "IMAGE_PARSE_FAILED"
    assert balances(payer) == before


def test_a_refused_payment_is_paid_once_and_raised(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes
) -> None:
    broke = "0x" + bytes(Account.create().key).hex()  # a payer holding no token
    sent: list[httpx.Request] = []
    with Client(x402_fleet.base_url, payer_key=broke) as fleet:
        fleet._http.event_hooks["request"].append(sent.append)
        with pytest.raises(ApiError) as raised:
            fleet.image("resize", file=photo, width=100)
    assert raised.value.status == 402 and raised.value.code == "PAYMENT_REQUIRED"
    assert "insufficient_funds" in raised.value.message
    assert [("X-PAYMENT" in r.headers) for r in sent] == [False, True]  # answered once


def test_without_a_payer_key_the_challenge_is_an_api_error(
    x402_fleet: Fleet, photo: bytes, price: int
) -> None:
    with Client(x402_fleet.base_url) as fleet, pytest.raises(ApiError) as raised:
        fleet.image("resize", file=photo, width=100)
    assert raised.value.status == 402 and raised.value.code == "PAYMENT_REQUIRED"
    (asked,) = decode_challenge(json.dumps(raised.value.body)).accepts
    assert int(asked.max_amount_required) == price


def test_a_client_takes_a_key_or_a_payer_key_and_checks_the_payer_key() -> None:
    key = "0x" + "11" * 32
    with pytest.raises(ValueError, match="api_key or a payer_key"):
        Client("http://127.0.0.1:9", "some-api-key", payer_key=key)
    with pytest.raises(PayerKeyError):
        Client("http://127.0.0.1:9", payer_key="0x1234")
    with Client("http://127.0.0.1:9", payer_key=key) as fleet:
        assert fleet.payer == Account.from_key(key).address


def test_without_eth_account_a_payer_key_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain `pip install imagefleet` has no eth-account (tests/test_packaging.py)."""
    import imagefleet.client_x402 as client_x402

    found = client_x402.importlib.util.find_spec
    monkeypatch.setattr(
        client_x402.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "eth_account" else found(name, *a),
    )
    with pytest.raises(PayerKeyError, match=r"pip install 'imagefleet\[x402\]'"):
        Client("http://127.0.0.1:9", payer_key="0x" + "11" * 32)


def test_a_payer_key_is_read_as_hex_or_from_a_file(tmp_path: Path) -> None:
    key = "ab" * 32
    (tmp_path / "hex").write_text(f"0x{key}\n")
    (tmp_path / "payer.json").write_text(json.dumps({"privateKey": f"0x{key}", "address": "0x"}))
    (tmp_path / "bad.json").write_text(json.dumps({"address": "0x"}))
    for given in (key, f"0x{key}", str(tmp_path / "hex"), str(tmp_path / "payer.json")):
        assert read_payer_key(given) == f"0x{key}"
    for bad in (str(tmp_path / "bad.json"), str(tmp_path / "missing"), "0x12"):
        with pytest.raises(PayerKeyError):
            read_payer_key(bad)


def _cli(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", *argv],
        env={**environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_pays_with_a_key_file_and_prints_the_transaction(
    x402_fleet: Fleet, payer: dict[str, Any], photo: bytes, price: int, tmp_path: Path
) -> None:
    spec = {
        "operation": "resize",
        "input": {"inline": base64.b64encode(photo).decode()},
        "width": 240,
    }
    (tmp_path / "job.json").write_text(json.dumps(spec))
    before = balances(payer)
    payer_file = str(x402_fleet.var_dir / "x402-payer.json")
    argv = ["submit", "job.json", "--url", x402_fleet.base_url, "--pay-with-key", payer_file]
    done = _cli([*argv, "--download", "out.png"], {}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    job_line, paid_line = done.stdout.strip().splitlines()
    job_id = job_line.split()[0]
    job = httpx.get(f"{x402_fleet.base_url}/v1/jobs/{job_id}", timeout=10).json()
    transaction = job["payment"]["transaction"]
    assert job["payment"]["state"] == "settled" and transaction in paid_line
    # an address in any case (the settlement may be the gateway's or the pool's record)
    assert paid_line.startswith("paid $0.000") and payer["address"].lower() in paid_line.lower()
    assert decode((tmp_path / "out.png").read_bytes()).shape[:2] == (180, 240)
    assert balances(payer) == (before[0] - price, before[1] + price)
    # The key as hex in FLEET_X402_PAYER_KEY, with --json: the job on stdout, the payment
    # on stderr; no API key is looked for (there is no var/dev-api-key here).
    env = {"FLEET_X402_PAYER_KEY": payer["privateKey"]}
    done = _cli(["submit", "job.json", "--url", x402_fleet.base_url, "--json"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = json.loads(done.stdout)
    assert printed["payment"]["state"] == "settled"
    assert printed["payment"]["transaction"] in done.stderr
    assert balances(payer) == (before[0] - 2 * price, before[1] + 2 * price)
    # A key together with a payer key is refused before anything is sent.
    done = _cli([*argv, "--key", "some-key"], {}, tmp_path)
    assert done.returncode == 1 and "not both" in done.stderr
    assert balances(payer) == (before[0] - 2 * price, before[1] + 2 * price)
