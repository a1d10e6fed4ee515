"""Issue 25: work a tenant makes fail is billed, from the outside against real fleets. Before,
every failure released its hold: a job run to `TIMEOUT`, a cancel mid-run and a `variants`
job whose output key named an existing folder (`trap/dir` while `trap/dir/x` exists, which
ran its whole work and ended `INTERNAL_ERROR (IsADirectoryError)`) were all free. Now
(docs/billing.md#endings): a `TIMEOUT` is charged its quote, a cancel while running its
share of the quote by the time it ran, an output key the store cannot write is refused at
submission (`OUTPUT_CONFLICT`, nothing held), one made unwritable mid-run ends the job
`OUTPUT_CONFLICT` charged, and a failure of the fleet's (storage down) still releases.

Each test uses an account of its own and checks the job record, the ledger entries,
`GET /v1/usage` and `imagefleet billing reconcile` (billing/reconcile.py) against prices
computed from the pixels it put in. The directory-store cases run on the session's
`dir_fleet`; the time-limit, cancel and storage cases on a fleet of this module's own, on
an S3 store (SeaweedFS) of its own that the storage test stops and starts again.
"""

from __future__ import annotations

import base64
import math
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis

from billing.accounts import Accounts
from billing.reconcile import reconcile
from imagefleet import procs
from imagefleet.client import Client
from jobs.store import JobStore
from tests import images
from tests.fleet_harness import Fleet, SeaweedS3, start_fleet, start_seaweedfs, wait_for_job
from tests.hostile_inputs import PER_MP, SLOW_STEPS, morphology_svg, put, slow_jpeg, slower_jpeg
from tests.hostile_measure import wait_running
from tests.x402_helpers import balances, payer_of

pytestmark = pytest.mark.fleet  # starts its own servers

SOFT_LIMIT = 10  # seconds: FLEET_SOFT_TIME_LIMIT of this module's fleet
SLOW_MP = 6  # slow_jpeg(): 3000x2000
CREDIT = 10_000_000


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = start_seaweedfs(tmp_path_factory.mktemp("billing-seaweedfs"))
    yield server
    server.child.stop(grace=0)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, own_s3: SeaweedS3) -> Iterator[Fleet]:
    fleet = start_fleet(
        tmp_path_factory.mktemp("billing") / "var",
        {
            "FLEET_SOFT_TIME_LIMIT": str(SOFT_LIMIT),
            "FLEET_HARD_TIME_LIMIT": "60",
            "FLEET_CPU_CONCURRENCY": "1",
            "FLEET_STORAGE_URL": own_s3.url("billing"),
            "FLEET_X402": "dev",  # a keyless payer too
        },
    )
    yield fleet
    fleet.stop()


def _account(fleet: Fleet) -> tuple[Accounts, str, str]:
    accounts = Accounts(redis.Redis.from_url(fleet.redis_url))
    name = f"b{secrets.token_hex(5)}"
    _, key = accounts.create(name, CREDIT)
    return accounts, name, key


def _books(fleet: Fleet, name: str) -> list[str]:
    """`imagefleet billing reconcile`'s problems for this account (none: the books balance)."""
    client = redis.Redis.from_url(fleet.redis_url)
    problems = reconcile(Accounts(client), JobStore(client, 3600))
    return [p for p in problems if p.startswith(f"{name}:")]


def _kinds(accounts: Accounts, name: str, job_id: str) -> list[tuple[str, int]]:
    return [
        (e["kind"], int(e["amount"])) for e in accounts.ledger.entries(name) if e["job"] == job_id
    ]


def _charged_once(
    fleet: Fleet, client: httpx.Client, accounts: Accounts, name: str, job: dict, amount: int
) -> None:
    """The job says it was captured for `amount`, the ledger moved exactly that once, the
    usage report counts it, and the books balance."""
    assert job["billing"]["state"] == "captured", job["billing"]
    assert job["billing"]["charged_micros"] == amount
    quote = job["billing"]["quoted_micros"]
    expected = [("hold", quote), ("capture", amount)]
    assert _kinds(accounts, name, job["id"]) == expected + (
        [("release", quote - amount)] if quote > amount else []
    )
    usage = client.get("/v1/usage").raise_for_status().json()
    assert usage["balance_micros"] == CREDIT - amount and usage["held_micros"] == 0
    assert usage["charges"][job["operation"]]["amount_micros"] == amount
    assert _books(fleet, name) == []


def _released(fleet: Fleet, accounts: Accounts, name: str, job: dict) -> None:
    assert job["billing"]["state"] == "released" and job["billing"]["charged_micros"] == 0
    quote = job["billing"]["quoted_micros"]
    assert _kinds(accounts, name, job["id"]) == [("hold", quote), ("release", quote)]
    assert accounts.require(name).held_micros == 0
    assert _books(fleet, name) == []


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


# --- time limits and cancels (this module's fleet) ----------------------------------------


def test_a_job_run_to_its_time_limit_is_charged_its_quote(impatient: Fleet) -> None:
    accounts, name, key = _account(impatient)
    with impatient.client(key) as client:
        # resvg draws this 1 MP SVG for minutes, however fast the machine (blurs of a photo
        # can end inside SOFT_LIMIT on a quiet one); it is killed at the limit
        put(client, "bomb.svg", morphology_svg(150))
        body = {"operation": "convert", "input": "bomb.svg", "format": "png"}
        job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        job = wait_for_job(client, job_id, timeout=SOFT_LIMIT + 90)
        assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT", job
        quote = 1 * PER_MP  # 1000x1000 px at 72 dpi
        assert job["billing"]["quoted_micros"] == quote
        _charged_once(impatient, client, accounts, name, job, quote)


def test_an_x402_job_run_to_its_time_limit_is_settled_for_its_quote(impatient: Fleet) -> None:
    """A keyless payer's job that times out is charged, and its authorization settled on
    the dev chain, as a success is (docs/payments.md): it cannot be had for free either."""
    payer = payer_of(impatient)
    before = balances(payer)
    # resvg draws this 1 MP SVG for minutes whatever the machine's speed (a pipeline of
    # blurs on a small inline input can finish inside SOFT_LIMIT on a quiet machine)
    svg = {"inline": base64.b64encode(morphology_svg(150)).decode()}
    body = {"operation": "convert", "input": svg, "format": "png"}
    with Client(impatient.base_url, payer_key=payer["privateKey"]) as fleet:
        submitted = fleet.submit(body)
        job = fleet.wait(submitted.id, timeout=SOFT_LIMIT + 120)  # until it is settled
    assert job.status == "failed" and job.error is not None and job.error["code"] == "TIMEOUT"
    quote = 1 * PER_MP  # 1000x1000 px at 72 dpi
    assert job.billing["state"] == "captured" and job.billing["charged_micros"] == quote
    assert job.payment is not None and job.payment["state"] == "settled", job.payment
    assert balances(payer) == (before[0] - quote, before[1] + quote)


def test_a_cancel_while_running_is_charged_its_share_of_the_quote(impatient: Fleet) -> None:
    accounts, name, key = _account(impatient)
    with impatient.client(key) as client:
        put(client, "slower.jpg", slower_jpeg())
        body = {"operation": "pipeline", "input": "slower.jpg", "steps": SLOW_STEPS}
        job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        wait_running(client, job_id)
        time.sleep(1.0)  # a second of work, well inside the time limit
        canceled = client.delete(f"/v1/jobs/{job_id}").raise_for_status().json()
        assert canceled["status"] == "canceled"
        quote = canceled["billing"]["quoted_micros"]
        ran = (_at(canceled["finished_at"]) - _at(canceled["started_at"])).total_seconds()
        share = math.ceil(quote * min(1.0, ran / SOFT_LIMIT))
        expected = min(quote, max(share, PER_MP))  # the 1 MP price as a floor
        assert 1.0 <= ran < SOFT_LIMIT and PER_MP < expected < quote  # a share, not a floor
        _charged_once(impatient, client, accounts, name, canceled, expected)
        assert wait_for_job(client, job_id)["billing"] == canceled["billing"]  # stays so


def test_a_cancel_while_queued_is_free(impatient: Fleet) -> None:
    accounts, name, key = _account(impatient)
    with impatient.client(key) as client:
        put(client, "slow.jpg", slow_jpeg())
        body = {"operation": "pipeline", "input": "slow.jpg", "steps": SLOW_STEPS}
        busy = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        wait_running(client, busy)  # the only cpu process is busy: the next one queues
        queued = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        canceled = client.delete(f"/v1/jobs/{queued}").raise_for_status().json()
        client.delete(f"/v1/jobs/{busy}")
    assert canceled["status"] == "canceled" and canceled["started_at"] is None
    assert canceled["billing"]["quoted_micros"] == SLOW_MP * len(SLOW_STEPS) * PER_MP
    assert canceled["billing"]["state"] == "released"
    assert _kinds(accounts, name, queued) == [("hold", canceled["billing"]["quoted_micros"])] + [
        ("release", canceled["billing"]["quoted_micros"])
    ]


def test_on_s3_a_key_and_a_folder_of_the_same_name_are_two_objects(impatient: Fleet) -> None:
    """S3 keys are flat: nothing is refused there, and both objects stay readable."""
    accounts, name, key = _account(impatient)
    with impatient.client(key) as client:
        put(client, "in.png", images.encode(images.photo_like(64, 48, seed=2)))
        put(client, "trap/dir/x", b"x")
        body = _variants("in.png", "trap/ok.png", "trap/dir")
        job = client.post("/v1/jobs?wait=60", json=body).json()
        assert job["status"] == "succeeded", job
        assert client.get("/v1/objects/trap/dir").content[:8] == b"\x89PNG\r\n\x1a\n"
        assert client.get("/v1/objects/trap/dir/x").content == b"x"
        _charged_once(impatient, client, accounts, name, job, PER_MP)  # the 1 MP minimum


def test_storage_down_under_a_job_is_the_fleets_fault_and_releases(
    impatient: Fleet, own_s3: SeaweedS3, tmp_path: Path
) -> None:
    """Admitted while the store was up; the store goes away before its run reads the input
    (the S3 client gives up after its retries, ~6 s): a crash of ours, `INTERNAL_ERROR`."""
    accounts, name, key = _account(impatient)
    with impatient.client(key) as client:
        put(client, "slower.jpg", slower_jpeg())
        put(client, "in.png", images.encode(images.photo_like(64, 48, seed=2)))
        busy_body = {"operation": "pipeline", "input": "slower.jpg", "steps": SLOW_STEPS}
        busy = client.post("/v1/jobs", json=busy_body).raise_for_status().json()["id"]
        wait_running(client, busy)  # the only cpu process is busy: the next job queues
        body = {"operation": "grayscale", "input": "in.png", "output": "grey.png"}
        job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        argv = cast(list[str], own_s3.child.process.args)  # spawned from a list of str
        own_s3.child.stop(grace=0)  # the object store goes away
        try:
            client.delete(f"/v1/jobs/{busy}").raise_for_status()  # the job runs now
            job = wait_for_job(client, job_id, timeout=SOFT_LIMIT + 90)
        finally:  # back for whatever runs next on this fleet
            own_s3.child = procs.spawn(
                "seaweedfs", argv, log_file=tmp_path / "weed.log", stop_signal=signal.SIGKILL
            )
            procs.wait_until(lambda: procs.port_open(own_s3.port), 60, "seaweedfs S3")
    assert job["status"] == "failed" and job["error"]["code"] == "INTERNAL_ERROR", job
    assert job["attempts"] == 1 and job["started_at"] is not None  # it ran, and failed
    assert job["billing"]["quoted_micros"] == PER_MP  # the 1 MP minimum
    _released(impatient, accounts, name, job)


# --- output keys (the directory store) -----------------------------------------------------


def _variants(source: str, *outputs: str, fmt: str = "png") -> dict:
    return {
        "operation": "variants",
        "input": source,
        "variants": [{"output": out, "format": fmt} for out in outputs],
    }


@pytest.mark.parametrize(
    ("stored", "body", "needle", "where"),
    [
        ("trap/dir/x", _variants("in.png", "trap/ok.png", "trap/dir"), "is a folder", "[1]"),
        ("a.png", _variants("in.png", "a.png/x"), "inside the object 'a.png'", "[0]"),
        ("pics/auto.webp/x", _variants("in.png", "pics/auto", fmt="auto"), "folder", "[0]"),
        (None, _variants("in.png", "out", "out/small.png"), "another output", "[1]"),
        ("g/dir/x", {"operation": "grayscale", "input": "in.png", "output": "g/dir"}, "folder", ""),
    ],
    ids=["names-a-folder", "inside-an-object", "auto-extension", "inside-its-own", "one-output"],
)
def test_an_output_key_the_store_cannot_write_is_refused_before_any_hold(
    dir_fleet: Fleet, stored: str | None, body: dict, needle: str, where: str
) -> None:
    accounts, name, key = _account(dir_fleet)
    with dir_fleet.client(key) as client:
        put(client, "in.png", images.encode(images.photo_like(64, 48, seed=2)))
        if stored:
            put(client, stored, b"x")
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "OUTPUT_CONFLICT" and needle in error["message"], error
        field = f"$.variants{where}.output" if body["operation"] == "variants" else "$.output"
        assert f"at `{field}`" in error["message"]
        batch = client.post("/v1/batches", json={"jobs": [body]}).raise_for_status().json()
        assert batch["items"][0]["error"]["code"] == "OUTPUT_CONFLICT", batch
    account = accounts.require(name)
    assert (account.balance_micros, account.held_micros) == (CREDIT, 0)
    moved = [e["kind"] for e in accounts.ledger.entries(name)]
    assert moved == ["credit"]  # the account's credit only: nothing held, nothing moved


def test_overwriting_an_object_of_the_same_key_stays_allowed(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet)
    body = {"operation": "grayscale", "input": "in.png", "output": "kept/out.png"}
    with dir_fleet.client(key) as client:
        put(client, "in.png", images.encode(images.photo_like(64, 48, seed=2)))
        put(client, "kept/out.png", b"old")
        job = client.post("/v1/jobs?wait=60", json=body).json()
        assert job["status"] == "succeeded", job
        assert client.get("/v1/objects/kept/out.png").content[:8] == b"\x89PNG\r\n\x1a\n"
        # an upload into the written object is refused, not a 503
        refused = client.put("/v1/objects/kept/out.png/x", content=b"x")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "OUTPUT_CONFLICT"
    assert _books(dir_fleet, name) == []


def test_a_key_made_a_folder_mid_run_ends_output_conflict_charged(dir_fleet: Fleet) -> None:
    accounts, name, key = _account(dir_fleet)
    body = {"operation": "pipeline", "input": "slow.jpg", "steps": SLOW_STEPS, "output": "r/o.png"}
    with dir_fleet.client(key) as client:
        put(client, "slow.jpg", slow_jpeg())
        job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        wait_running(client, job_id)
        put(client, "r/o.png/x", b"x")  # admitted, then the key became a folder
        job = wait_for_job(client, job_id, timeout=120)
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "OUTPUT_CONFLICT", job["error"]
        assert "r/o.png" in job["error"]["message"]
        assert client.get("/v1/objects/r/o.png/x").content == b"x"  # the tenant's object stays
        quote = SLOW_MP * len(SLOW_STEPS) * PER_MP
        _charged_once(dir_fleet, client, accounts, name, job, quote)
