"""The Python client, webhook verification and the client CLI, against a real fleet."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagefleet import client_cli
from imagefleet.client import (
    ApiError,
    AsyncClient,
    Client,
    JobResult,
    WebhookVerificationError,
    verify_webhook,
)
from imagefleet.client_operations import method_name
from jobs.analysis import MetadataJob
from jobs.crop import CropJob
from jobs.geometry import ResizeJob
from jobs.registry import OPERATIONS
from jobs.spec import Rect
from tests.fleet_harness import Fleet
from tests.images import decode, encode, photo_like


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def client(dir_fleet: Fleet) -> Iterator[Client]:
    with Client(dir_fleet.base_url, dir_fleet.api_key) as c:
        yield c


@pytest.fixture(scope="module")
def photo() -> tuple:
    pixels = photo_like(320, 240, seed=7)
    return pixels, encode(pixels, "PNG")


def test_every_operation_has_a_named_method_made_from_the_registry() -> None:
    """Made, not written: a client method of the same name would shadow it, so each is
    checked to be the generated one."""
    for op in OPERATIONS.values():
        for cls in (Client, AsyncClient):
            method = getattr(cls, method_name(op), None)
            assert method is not None and method.__qualname__ == f"Operations.{method_name(op)}"
            assert op.spec.__name__ in (method.__doc__ or "")


class _Recording(Client):
    """A client that records what `run` is given instead of sending it."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "key")
        self.ran: list[Any] = []

    def run(self, job: Any, wait: bool = True) -> Any:
        self.ran.append((job, wait))
        return job


def test_a_named_method_runs_its_own_spec_and_refuses_another() -> None:
    fleet = _Recording()
    job = MetadataJob(input="a.png")
    named = fleet.metadata  # type: ignore[attr-defined]  # made at run time
    assert named(job, wait=False) is job and fleet.ran == [(job, False)]
    with pytest.raises(TypeError, match="metadata\\(\\) takes a MetadataJob, not a CropJob"):
        named(CropJob(input="a.png", rect=Rect(x=0, y=0, width=1, height=1)))
    assert len(fleet.ran) == 1
    fleet.close()


def test_upload_and_typed_crop_match_numpy(client: Client, photo: tuple) -> None:
    pixels, png = photo
    key = f"client/{_uid()}.png"
    reply = client.upload(png, key)
    assert reply["key"] == key and reply["bytes"] == len(png)
    job = client.run(CropJob(input=key, rect=Rect(x=30, y=20, width=100, height=80), format="png"))
    assert job.ok and job.result is not None and job.output is not None, job.raw
    assert (job.result["width"], job.result["height"]) == (100, 80)
    out = decode(client.download(job.output))
    assert (out == pixels[20:100, 30:130]).all()  # PNG is lossless: exact pixels
    assert job.billing["state"] == "captured" and job.billing["charged_micros"] > 0


def test_submit_dict_then_wait_and_get(client: Client, photo: tuple) -> None:
    key = f"client/{_uid()}.png"
    client.upload(photo[1], key)
    job = client.submit({"operation": "resize", "input": key, "width": 64, "fit": "inside"})
    assert job.status in ("queued", "running", "succeeded")
    done = client.wait(job.id, timeout=60)
    assert done.ok and done.id == job.id and done.result is not None
    assert (done.result["width"], done.result["height"]) == (64, 48)
    assert client.get(job.id).status == "succeeded"


def test_failed_job_raise_for_error(client: Client, photo: tuple) -> None:
    key = f"client/{_uid()}.png"
    client.upload(photo[1], key)
    job = client.run(CropJob(input=key, rect=Rect(x=300, y=200, width=100, height=100)))
    assert job.status == "failed" and not job.ok
    with pytest.raises(ApiError) as info:
        job.raise_for_error()
    assert info.value.code == "CROP_OUT_OF_BOUNDS"


def test_bad_spec_is_validation_error(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.submit(
            {
                "operation": "crop",
                "input": "x.png",
                "rect": {"x": 0, "y": 0, "width": 0, "height": 5},
            }
        )
    assert info.value.status == 400 and info.value.code == "VALIDATION_ERROR"
    assert "$.rect.width" in info.value.message


def test_missing_object_is_not_found(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.download(f"client/missing-{_uid()}.png")
    assert info.value.status == 404 and info.value.code == "NOT_FOUND"


def test_idempotency_key_returns_same_job(client: Client, photo: tuple) -> None:
    key = f"client/{_uid()}.png"
    client.upload(photo[1], key)
    spec = {"operation": "metadata", "input": key}
    idem = f"client-test-{_uid()}"
    first = client.submit(spec, idempotency_key=idem)
    second = client.submit(spec, idempotency_key=idem)
    assert first.id == second.id
    with pytest.raises(ApiError) as info:
        client.submit({**spec, "animated": True}, idempotency_key=idem)
    assert info.value.code == "IDEMPOTENCY_CONFLICT"


def test_jobs_iterates_across_pages(client: Client, photo: tuple) -> None:
    key = f"client/{_uid()}.png"
    client.upload(photo[1], key)
    ids = {client.submit({"operation": "metadata", "input": key}).id for _ in range(3)}
    listed = [job.id for job in client.jobs(limit=2)]  # 2 per page: forces paging
    assert ids <= set(listed)
    assert len(listed) == len(set(listed))
    assert all(isinstance(j, JobResult) for j in client.jobs(status="succeeded", limit=5))


def test_usage(client: Client) -> None:
    usage = client.usage()
    assert usage["account"] == "dev" and "balance_micros" in usage


def test_cancel(client: Client) -> None:
    key = f"client/{_uid()}.png"
    client.upload(encode(photo_like(1500, 1500), "PNG"), key)
    # Slow blurs fill the cpu pool (2 processes), so the last one is still queued.
    jobs = [client.submit({"operation": "blur", "input": key, "sigma": 150}) for _ in range(4)]
    canceled = [client.cancel(jobs[-1].id)]
    for job in jobs[:-1]:  # free the pool; one may have ended already (409)
        try:
            client.cancel(job.id)
        except ApiError as exc:
            assert exc.status == 409, exc
    assert canceled[0].id == jobs[-1].id and canceled[0].status == "canceled"
    assert canceled[0].billing["state"] == "released"
    with pytest.raises(ApiError) as info:
        canceled[0].raise_for_error()
    assert info.value.code == "CANCELED"
    with pytest.raises(ApiError) as info:  # already ended: refused
        client.cancel(jobs[-1].id)
    assert info.value.status == 409
    assert client.get(jobs[-1].id).status == "canceled"


def test_async_client_crop_and_errors(dir_fleet: Fleet, photo: tuple) -> None:
    pixels, png = photo

    async def main() -> tuple:
        async with AsyncClient(dir_fleet.base_url, dir_fleet.api_key) as fleet:
            key = f"client/{_uid()}.png"
            await fleet.upload(png, key)
            job = await fleet.run(
                CropJob(input=key, gravity="center", width=50, height=40, format="png")
            )
            assert job.output is not None, job.raw
            data = await fleet.download(job.output)
            listed = [j.id async for j in fleet.jobs(limit=3)]
            with pytest.raises(ApiError) as info:
                await fleet.run(ResizeJob(input=f"client/none-{_uid()}.png", width=10))
            return job, data, listed, info.value

    job, data, listed, err = asyncio.run(main())
    assert job.ok and job.id in listed
    assert (decode(data) == pixels[100:140, 135:185]).all()
    assert err.status == 404


# --- webhooks: signatures computed by hand, independently of verify_webhook -------------

SECRET_KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


def _signed(body: bytes, key: bytes = SECRET_KEY, stamp: int | None = None) -> dict[str, str]:
    msg_id, stamp = "msg_1", stamp if stamp is not None else int(time.time())
    mac = hmac.new(key, b"msg_1." + str(stamp).encode() + b"." + body, hashlib.sha256)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


def test_verify_webhook_accepts_a_valid_delivery() -> None:
    body = json.dumps({"type": "job.succeeded", "data": {"id": "job_1"}}).encode()
    headers = _signed(body)
    assert verify_webhook(headers, body, SECRET)["data"]["id"] == "job_1"
    # several signatures (key rotation): any one matching is enough
    headers["Webhook-Signature"] = "v1,AAAA " + headers["Webhook-Signature"]
    assert verify_webhook(headers, body, SECRET)["type"] == "job.succeeded"


def test_verify_webhook_accepts_the_fleets_own_signer() -> None:
    from worker.webhooks import sign  # what the worker puts on real deliveries

    body, stamp = b'{"type": "job.canceled"}', int(time.time())
    headers = {
        "webhook-id": "msg_9",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, "msg_9", stamp, body),
    }
    assert verify_webhook(headers, body, SECRET) == {"type": "job.canceled"}


@pytest.mark.parametrize(
    "case", ["tampered", "wrong-secret", "stale", "future", "missing", "v2-only"]
)
def test_verify_webhook_rejects(case: str) -> None:
    body = b'{"type": "job.failed"}'
    headers = _signed(body)
    secret = SECRET
    if case == "tampered":
        body = b'{"type": "job.succeeded"}'
    elif case == "wrong-secret":
        secret = "whsec_" + base64.b64encode(b"another key entirely, 32 bytes!!").decode()
    elif case == "stale":
        headers = _signed(body, stamp=int(time.time()) - 301)
    elif case == "future":
        headers = _signed(body, stamp=int(time.time()) + 3600)
    elif case == "missing":
        del headers["Webhook-Signature"]
    elif case == "v2-only":
        headers["Webhook-Signature"] = headers["Webhook-Signature"].replace("v1,", "v2,")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, secret)


# --- the CLI, through a tiny argparse wrapper --------------------------------------------


def _cli(fleet: Fleet, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="imagefleet")
    client_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([argv[0], "--url", fleet.base_url, "--key", fleet.api_key, *argv[1:]])
    return args.func(args)


def test_cli_upload_submit_wait_download(
    dir_fleet: Fleet, photo: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pixels, png = photo
    src = tmp_path / "in.png"
    src.write_bytes(png)
    key = f"cli-{_uid()}.png"
    assert _cli(dir_fleet, "upload", str(src), key) == 0
    assert key in capsys.readouterr().out
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps({"operation": "resize", "input": key, "width": 160, "format": "jpeg"})
    )
    out = tmp_path / "out.jpg"
    assert _cli(dir_fleet, "submit", str(spec), "--wait", "--download", str(out)) == 0
    line = capsys.readouterr().out
    assert "succeeded" in line and "(160x120)" in line
    assert decode(out.read_bytes()).shape == (120, 160, 3)
    job_id = line.split()[0]
    assert _cli(dir_fleet, "status", job_id, "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == job_id


def test_cli_submit_failed_job_exits_1(
    dir_fleet: Fleet, photo: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "small.png"
    src.write_bytes(photo[1])
    key = f"cli-{_uid()}.png"
    assert _cli(dir_fleet, "upload", str(src), key) == 0
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "operation": "crop",
                "input": key,
                "rect": {"x": 0, "y": 0, "width": 999, "height": 10},
            }
        )
    )
    assert _cli(dir_fleet, "submit", str(spec), "--wait") == 1
    assert "CROP_OUT_OF_BOUNDS" in capsys.readouterr().err


def test_cli_batch(dir_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(5):
        (src / f"img{i}.png").write_bytes(encode(photo_like(200, 100, seed=i), "PNG"))
    (src / "notes.txt").write_text("not an image")  # skipped by suffix
    code = _cli(
        dir_fleet,
        "batch",
        str(src),
        "--op",
        "resize",
        "--width",
        "80",
        "--format",
        "jpeg",
        "--out",
        str(out),
        "--concurrency",
        "3",
        "--prefix",
        f"batch-{_uid()}",
    )
    captured = capsys.readouterr()
    assert code == 0, captured
    outputs = sorted(out.iterdir())
    assert [p.name for p in outputs] == [f"img{i}.png.jpg" for i in range(5)]
    assert all(decode(p.read_bytes()).shape == (40, 80, 3) for p in outputs)
    summary = " ".join(captured.out.split())
    assert "succeeded 5" in summary and "failed 0" in summary
    # billed megapixels (minimum 1 MP per image) and 300 micro-$ per MP
    assert "megapixels (billed) 5.00" in summary and "cost $0.001500" in summary
    assert "[5/5]" in captured.err and "\r" not in captured.err  # not a tty: plain lines


def test_cli_batch_lists_failures_by_file(
    dir_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.png").write_bytes(encode(photo_like(64, 64), "PNG"))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = _cli(dir_fleet, "batch", str(src), "--width", "32", "--prefix", f"bad-{_uid()}")
    summary = " ".join(capsys.readouterr().out.split())
    assert code == 1
    assert "succeeded 1" in summary and "failed 1" in summary
    assert "broken.png: IMAGE_PARSE_FAILED: " in summary
    assert "$.jobs" not in summary  # the file name says which, not the batch's internals
