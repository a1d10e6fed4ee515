"""The Go client (clients/go): formatted and vetted, its own tests run against a real fleet,
and its example program crops by rect, by gravity and out of bounds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from billing.accounts import Accounts
from tests.fleet_harness import Fleet

GO_DIR = Path(__file__).resolve().parent.parent / "clients" / "go"
LIVE_TESTS = {
    "TestLiveCropRect",
    "TestLiveCropGravity",
    "TestLiveCropOutOfBounds",
    "TestLiveCropRefusedAtSubmission",
    "TestLiveSubmitMapAndStruct",
    "TestLiveGetWaitCancel",
    "TestLiveObjectsAndKeys",
    "TestLiveRateLimitRetries",
    "TestLiveWebhookReceiver",
    "TestLivePythonSignedWebhook",
}


def go(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run `go ARGS` in clients/go (stdlib only: no module proxy); its standard output."""
    binary = shutil.which("go")
    assert binary, "Go is not installed (make deps installs Debian's golang-go)"
    full_env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", **(env or {})}
    done = subprocess.run(
        [binary, *args],
        cwd=GO_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"go {' '.join(args)} failed:\n{output[-6000:]}"
    return done.stdout


def go_test_names() -> set[str]:
    """Every test function the Go package declares."""
    names = set()
    for path in GO_DIR.glob("*_test.go"):
        names.update(re.findall(r"^func (Test\w+)\(t \*testing\.T\)", path.read_text(), re.M))
    return names


def python_signed_webhook() -> str:
    """A job webhook signed here with hmac, for the Go side to verify (Standard Webhooks)."""
    key = secrets.token_bytes(32)
    body = json.dumps(
        {
            "id": "job_py",
            "operation": "crop",
            "status": "failed",
            "result": None,
            "error": {"code": "CROP_OUT_OF_BOUNDS", "message": "rect exceeds the image"},
        }
    )
    stamp = str(int(time.time()))
    mac = hmac.new(key, f"msg_py.{stamp}.{body}".encode(), hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_py",
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    secret = "whsec_" + base64.b64encode(key).decode()
    return json.dumps({"headers": headers, "body": body, "secret": secret})


@pytest.fixture(scope="module")
def go_env(dir_fleet: Fleet) -> dict[str, str]:
    """The variables the Go tests and the example read: fresh accounts on the fleet."""
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    account, key = accounts.create(f"go-{secrets.token_hex(4)}", 20_000_000)
    _, limited = accounts.create(f"go-limited-{secrets.token_hex(4)}", 1_000_000, rate_limit=1)
    return {
        "IMAGEFLEET_URL": dir_fleet.base_url,
        "IMAGEFLEET_API_KEY": key,
        "IMAGEFLEET_WEBHOOK_SECRET": account.webhook_secret,
        "IMAGEFLEET_LIMITED_API_KEY": limited,
        "IMAGEFLEET_PY_WEBHOOK": python_signed_webhook(),
    }


def test_go_client_is_gofmt_clean_and_vetted() -> None:
    assert shutil.which("gofmt"), "gofmt is not installed (Debian's golang-go has it)"
    unformatted = subprocess.run(
        ["gofmt", "-l", "."], cwd=GO_DIR, capture_output=True, text=True, check=True
    ).stdout
    assert unformatted == "", f"not gofmt-formatted:\n{unformatted}"
    go("vet", "./...")


def test_go_tests_pass_against_the_fleet(go_env: dict[str, str]) -> None:
    output = go("test", "-v", "-count=1", "./...", env=go_env)
    declared = go_test_names()
    assert LIVE_TESTS <= declared, LIVE_TESTS - declared
    passed = set(re.findall(r"^--- PASS: (\w+) ", output, re.M))
    assert passed == declared, f"did not pass: {declared - passed}\n{output[-4000:]}"
    assert "--- SKIP" not in output and "--- FAIL" not in output, output[-4000:]
    # the gravity subtests ran too
    for mode in ("center", "focal_point", "entropy"):
        assert f"--- PASS: TestLiveCropGravity/{mode} " in output


def test_go_tests_skip_without_a_fleet() -> None:
    """Offline (no IMAGEFLEET_URL) the live tests skip and the others still run."""
    env = {name: "" for name in ("IMAGEFLEET_URL", "IMAGEFLEET_API_KEY")}
    output = go("test", "-v", "-count=1", "-run", "TestLiveCropRect|TestCropJobJSON", ".", env=env)
    assert "--- SKIP: TestLiveCropRect " in output
    assert "--- PASS: TestCropJobJSON " in output


def test_go_example_crops(go_env: dict[str, str], dir_fleet: Fleet) -> None:
    output = go("run", "./examples/crop", env=go_env)
    lines: dict[str, str] = {}
    for line in output.strip().splitlines():
        name, _, rest = line.partition(": ")
        lines[name] = rest
    assert set(lines) == {"rect", "focal_point", "center", "out of bounds"}, output
    assert "examples/cropped.jpg, 800x600 jpeg" in lines["rect"]
    assert "crop x=100 y=50 800x600" in lines["rect"]
    # 30% across and 20% down the 1200x800 input, the 400x300 window: x 160, y 10
    assert "400x300 jpeg" in lines["focal_point"]
    assert "crop x=160 y=10 400x300" in lines["focal_point"]
    assert "examples/center.webp, 400x300 webp" in lines["center"]
    assert "crop x=400 y=250 400x300" in lines["center"]
    assert lines["out of bounds"].startswith("CROP_OUT_OF_BOUNDS (HTTP 422)"), output
    # what it reported is what the fleet stored
    job_id = lines["rect"].split()[0]
    with dir_fleet.client(go_env["IMAGEFLEET_API_KEY"]) as client:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        assert job["status"] == "succeeded"
        assert job["result"]["crop"] == {"x": 100, "y": 50, "width": 800, "height": 600}
        stored = client.get("/v1/objects/examples/cropped.jpg").raise_for_status().content
        assert len(stored) == job["result"]["bytes"] and stored[:2] == b"\xff\xd8"


README_PRELUDE = """package main

import (
\t"context"
\t"errors"
\t"fmt"
\t"log"
\t"os"

\timagefleet "github.com/imagefleet/imagefleet-go"
)

func main() {
\tctx := context.Background()
"""


def test_the_readme_go_example_compiles_against_the_client(tmp_path: Path) -> None:
    """The README's Go snippet, as the body of a main function in a module that points at
    clients/go the way the README says, passes `go vet`."""
    readme = (GO_DIR.parent.parent / "README.md").read_text()
    snippet = re.search(r"```go\n(.*?)```", readme, re.S)
    assert snippet, "the README has no Go example"
    (tmp_path / "go.mod").write_text(
        "module readme\n\ngo 1.19\n\nrequire github.com/imagefleet/imagefleet-go v0.0.0\n\n"
        f"replace github.com/imagefleet/imagefleet-go => {GO_DIR}\n"
    )
    (tmp_path / "main.go").write_text(README_PRELUDE + snippet.group(1) + "}\n")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
    done = subprocess.run(
        [shutil.which("go") or "go", "vet", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
