"""docs/payments.md runs as written: its curl steps, its Python example and its CLI example,
taken from the page itself (so they cannot drift), against a fleet on its x402 dev chain,
each moving the balances on chain by the price of what it ran."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
PAGE = ROOT / "docs" / "payments.md"
DOC_URL = "http://127.0.0.1:8080"  # the page's fleet; the tests' is elsewhere
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(heading: str, language: str) -> list[str]:
    """The `language` code blocks of the page's section `## heading`, in order."""
    text = PAGE.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    found = [code for lang, code in _BLOCK.findall(section) if lang == language]
    assert found, f"no {language} block under `## {heading}`"
    return found


def _for(fleet: Fleet, code: str) -> str:
    assert DOC_URL in code
    return code.replace(DOC_URL, fleet.base_url)


@pytest.fixture(scope="module")
def workdir(x402_fleet: Fleet) -> Path:
    """Where the page's commands run: next to the fleet's var/, with a 1600x1200 photo.jpg."""
    where = x402_fleet.var_dir.parent
    (where / "photo.jpg").write_bytes(encode(photo_like(WIDTH, HEIGHT, seed=5), "JPEG"))
    return where


@pytest.fixture(scope="module")
def payer(x402_fleet: Fleet) -> dict[str, Any]:
    return payer_of(x402_fleet)


@pytest.fixture(scope="module")
def price(x402_fleet: Fleet) -> int:
    return resize_price(x402_fleet, WIDTH, HEIGHT)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """As a reader runs it: the project's venv first on PATH, no FLEET_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_page_shows_the_price_of_its_photo(price: int) -> None:
    """The amounts the page prints are those of a 1600x1200 resize at today's price."""
    text = PAGE.read_text()
    assert f'"maxAmountRequired":"{price}"' in text
    assert f'"charged_micros":{price}' in text and f"${price / 1e6:.6f}" in text


def test_the_curl_steps_pay_and_move_the_balances_by_the_price(
    x402_fleet: Fleet, workdir: Path, payer: dict[str, Any], price: int
) -> None:
    script = _for(x402_fleet, "\n".join(blocks("Paying with curl, step by step", "sh")))
    before = balances(payer)
    done = _run(["bash", "-euo", "pipefail", "-c", script], workdir)
    codes = [line for line in done.stdout.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert codes == ["402", "200", "402", "200"]  # two calls, each challenged then paid
    shown = _json_lines(done.stdout)
    balance_before, balance_after = (line for line in shown if "balance" in line)
    (challenge,) = (line for line in shown if "x402Version" in line)
    (settlement,) = (line for line in shown if "success" in line)
    (job,) = (line for line in shown if "id" in line)
    assert int(challenge["accepts"][0]["maxAmountRequired"]) == price
    assert balance_before["address"] == balance_after["address"] == payer["address"]
    assert balance_before["balance"] - balance_after["balance"] == price  # the page's check
    assert settlement["success"] is True and settlement["payer"] == payer["address"]
    assert job["payment"]["state"] == "settled" and job["billing"]["charged_micros"] == price
    assert job["payment"]["transaction"] == settlement["transaction"]
    # Step 4's inline output was replaced by step 6's, fetched from its signed URL.
    assert decode((workdir / "small.jpg").read_bytes()).shape[:2] == (240, 320)
    assert balances(payer) == (before[0] - 2 * price, before[1] + 2 * price)


def test_the_python_example_pays_twice(
    x402_fleet: Fleet, workdir: Path, payer: dict[str, Any], price: int
) -> None:
    (code,) = blocks("Paying from Python", "python")
    before = balances(payer)
    done = _run([sys.executable, "-c", _for(x402_fleet, code)], workdir)
    first, second = done.stdout.strip().splitlines()
    state, transaction, output_url = second.split()
    assert re.fullmatch(r"0x[0-9a-f]{64}", first) and state == "settled"
    assert re.fullmatch(r"0x[0-9a-f]{64}", transaction) and transaction != first
    assert output_url.startswith(x402_fleet.base_url + "/v1/signed/")
    assert decode((workdir / "small.jpg").read_bytes()).shape[:2] == (300, 400)
    assert balances(payer) == (before[0] - 2 * price, before[1] + 2 * price)


def test_the_sdk_example_pays_once_with_the_official_sdk(
    x402_fleet: Fleet, workdir: Path, payer: dict[str, Any], price: int
) -> None:
    (code,) = blocks("Paying with the official x402 SDK", "python")
    before = balances(payer)
    done = _run([sys.executable, "-c", _for(x402_fleet, code)], workdir)
    status, success, transaction = done.stdout.strip().split()
    assert (status, success) == ("200", "True") and re.fullmatch(r"0x[0-9a-f]{64}", transaction)
    assert decode((workdir / "small.jpg").read_bytes()).shape[:2] == (300, 400)
    assert balances(payer) == (before[0] - price, before[1] + price)


def test_the_cli_example_pays_once(
    x402_fleet: Fleet, workdir: Path, payer: dict[str, Any], price: int
) -> None:
    (code,) = blocks("Paying from the command line", "sh")
    before = balances(payer)
    done = _run(["bash", "-euo", "pipefail", "-c", _for(x402_fleet, code)], workdir)
    job_line, paid_line = done.stdout.strip().splitlines()
    assert " succeeded resize " in job_line and "(320x240)" in job_line
    # The address in any case: the gateway's settlement or the pool's (recorded lower case).
    paid = f"paid ${price / 1e6:.6f} from {payer['address']}: transaction 0x"
    assert paid_line.lower().startswith(paid.lower())
    assert decode((workdir / "small.jpg").read_bytes()).shape[:2] == (240, 320)
    assert balances(payer) == (before[0] - price, before[1] + price)
