"""What a new user meets first, from the outside: the CLI finds the fleet where the server
listens (FLEET_HOST / FLEET_PORT) and says in one line when nothing answers; `batch` sends
every format the fleet reads; the webhook secret can be found; no credential is printed;
signed links carry the output's type; the seed's upload route answers; and a spec can be
checked before anything is uploaded."""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pillow_heif
import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow)
import pytest
import redis
from PIL import Image

from billing.accounts import Accounts
from billing.header import header_of_bytes
from gateway.uploads_api import media_type_of
from imagefleet import client_cli, procs
from imagefleet.client_batch import unplaced
from imagefleet.redact import redacted
from imagefleet.settings import gateway_url, load_settings
from jobs.media import BY_NAME, FORMAT_OF_EXTENSION, FORMATS, READ_EXTENSIONS
from tests import images
from tests.fleet_harness import S3_ACCESS_KEY, S3_SECRET_KEY, Fleet
from tests.hostile_inputs import new_tenant
from tests.images import pdf_of

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    b'<rect width="40" height="20"/></svg>'
)


def uid() -> str:
    return secrets.token_hex(4)


def cli(fleet: Fleet, *argv: str) -> int:
    """A client command against `fleet`, in this process (its output in capsys)."""
    parser = argparse.ArgumentParser(prog="imagefleet")
    client_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([argv[0], "--url", fleet.base_url, "--key", fleet.api_key, *argv[1:]])
    return int(args.func(args))


def _imagefleet(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`imagefleet ...` as a user runs it, with only these FLEET_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- where the fleet is: one default URL, the server's -----------------------------------


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"FLEET_PORT": "8091"}, "http://127.0.0.1:8091"),
        ({"FLEET_HOST": "0.0.0.0", "FLEET_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"FLEET_HOST": "::1"}, "http://[::1]:8080"),
        (
            {"FLEET_PORT": "8091", "FLEET_PUBLIC_URL": "https://fleet.example/"},
            "https://fleet.example",
        ),
    ],
)
def test_the_cli_and_the_server_derive_one_url(env: dict[str, str], url: str) -> None:
    assert gateway_url(env) == url
    assert load_settings(env).public_url == url  # what the gateway links to


def test_an_unreachable_fleet_is_one_line_naming_where(tmp_path: Path) -> None:
    port = procs.free_port()  # nothing listens there
    photo = tmp_path / "photo.png"
    photo.write_bytes(images.encode(images.photo_like(8, 8)))
    for argv in (["upload", str(photo)], ["status", "job_x"], ["batch", str(tmp_path)]):
        run = _imagefleet(*argv, "--key", "if_x", FLEET_PORT=str(port))
        assert run.returncode == 1, run
        assert run.stderr.splitlines() == [
            f"imagefleet: cannot reach the fleet at http://127.0.0.1:{port}:"
            " connection refused; is `make run` running?"
        ], run.stderr
        assert "Traceback" not in run.stderr + run.stdout


# --- batch: every format the fleet reads, failures by file ---------------------------------


def _encoded(fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(images.photo_like(48, 32)).save(out, format=fmt, **options)
    return out.getvalue()


def test_the_format_table_names_every_format_the_fleet_sniffs() -> None:
    pillow_heif.register_heif_opener()
    samples = {
        "png": _encoded("PNG"),
        "jpeg": _encoded("JPEG"),
        "bmp": _encoded("BMP"),
        "heif": _encoded("HEIF"),
        "jxl": _encoded("JXL"),
        "jp2": _encoded("JPEG2000"),
        "svg": SVG,
        "pdf": _encoded("PDF"),
    }
    for name, data in samples.items():
        header = header_of_bytes(data)
        assert header is not None and header.format == name, name
        assert set(BY_NAME[name].extensions) <= READ_EXTENSIONS
    assert {"heic", "heif", "jxl", "jp2", "svg", "pdf"} <= READ_EXTENSIONS
    assert FORMAT_OF_EXTENSION["jpg"] == "jpeg" and "svg" not in FORMAT_OF_EXTENSION


def test_batch_sends_every_format_the_fleet_reads(
    dir_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pillow_heif.register_heif_opener()
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    files = {
        "a.heic": _encoded("HEIF"),
        "b.jxl": _encoded("JXL"),
        "c.jp2": _encoded("JPEG2000"),
        "d.svg": SVG,
        "e.pdf": pdf_of(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 60 30] >>",
                b"<< /Type /Page /Parent 2 0 R >>",
            ]
        ),
        "f.png": _encoded("PNG"),
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    code = cli(
        dir_fleet, "batch", str(src), "--op", "metadata", "--out", str(out), "--prefix", uid()
    )
    summary = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "succeeded 6" in summary, summary
    formats = {p.name: json.loads(p.read_text())["metadata"]["format"] for p in out.iterdir()}
    assert formats == {
        "a.heic.json": "heif",
        "b.jxl.json": "jxl",
        "c.jp2.json": "jp2",
        "d.svg.json": "svg",
        "e.pdf.json": "pdf",
        "f.png.json": "png",
    }


def test_a_batch_item_message_loses_its_place_in_the_batch() -> None:
    assert unplaced("not an image - at `$.jobs[6]`", 6) == "not an image"
    assert unplaced("Expected `int` - at `$.jobs[2].width`", 2) == "Expected `int` - at `$.width`"
    assert unplaced("no place here", 3) == "no place here"


# --- webhook secrets, and no credential printed --------------------------------------------


def test_accounts_show_prints_the_webhook_secret_and_up_writes_the_dev_one(
    dir_fleet: Fleet,
) -> None:
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    dev = accounts.require("dev")
    secret_file = dir_fleet.var_dir / "dev-webhook-secret"
    assert secret_file.read_text().strip() == dev.webhook_secret.strip()
    assert dev.webhook_secret.startswith("whsec_")
    assert secret_file.stat().st_mode & 0o077 == 0  # for its owner only
    name = f"newuser-{uid()}"
    account, _ = accounts.create(name, 0)
    shown = _imagefleet("accounts", "show", name, FLEET_REDIS_URL=dir_fleet.redis_url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["webhook_secret"] == account.webhook_secret


def test_the_ready_line_and_the_logs_carry_no_s3_secret(s3_fleet: Fleet) -> None:
    log = s3_fleet.log_file.read_text()
    ready = next(line for line in log.splitlines() if "imagefleet: ready on" in line)
    assert f"storage s3://{S3_ACCESS_KEY}:***@127.0.0.1:" in ready, ready
    assert S3_SECRET_KEY not in log


def test_redacted_hides_every_url_password() -> None:
    assert redacted("s3://K:S@h:1/b and redis://:pw@r:6379/0") == (
        "s3://K:***@h:1/b and redis://:***@r:6379/0"
    )
    assert (
        redacted("amqp://u:p@q//, file:///var/objects") == "amqp://u:***@q//, file:///var/objects"
    )
    assert redacted("http://host/path@x") == "http://host/path@x"  # no password: as it was


# --- signed links, the seed's upload route, validation --------------------------------------


def test_a_signed_link_carries_the_type_of_its_bytes() -> None:
    assert media_type_of(_encoded("JPEG")) == "image/jpeg"
    assert media_type_of(_encoded("PNG")) == "image/png"
    assert media_type_of(_encoded("WEBP")) == "image/webp"
    # Read but never written by the fleet, or no image at all: bytes, not a page.
    assert media_type_of(SVG) == "application/octet-stream"
    assert media_type_of(b"<html><script>alert(1)</script></html>") == "application/octet-stream"


def test_what_workers_store_outputs_as_is_the_tables_type() -> None:
    from worker.encoding import CONTENT_TYPES  # an S3 signed link answers what was stored

    assert {f.name: f.media_type for f in FORMATS if f.written} == CONTENT_TYPES


def test_the_seeds_upload_url_route_is_an_alias_of_uploads(dir_fleet: Fleet) -> None:
    pixels = images.photo_like(40, 30, seed=3)
    with dir_fleet.client() as client:
        reply = client.post("/v1/cputools/upload-url")
        assert reply.status_code == 201, reply.text
        upload = reply.json()
        assert set(upload) == set(client.post("/v1/uploads").json())
        assert upload["inputKey"].startswith("uploads/") and upload["expiresAt"]
        put = httpx.put(upload["uploadUrl"], content=images.encode(pixels), timeout=30)
        assert put.status_code == 201, put.text
        done = client.post(
            "/v1/image/grayscale", json={"file": {"inputKey": upload["inputKey"]}}
        ).json()
        assert (done["width"], done["height"]) == (40, 30)
        paths = client.get("/openapi.json").json()["paths"]
        assert "post" in paths["/v1/cputools/upload-url"]
        assert httpx.post(f"{dir_fleet.base_url}/v1/cputools/upload-url").status_code == 401


def test_validate_checks_a_spec_and_keeps_nothing(dir_fleet: Fleet) -> None:
    key = new_tenant(dir_fleet, "validate-", 0)  # no credit: validation costs nothing
    with dir_fleet.client(key) as client:
        ok = client.post(
            "/v1/jobs/validate",
            json={"operation": "resize", "input": "not/uploaded/yet.png", "width": 40},
        )
        assert ok.status_code == 200 and ok.json() == {"valid": True, "operation": "resize"}
        refused = [
            client.post("/v1/jobs/validate", json=spec)
            for spec in (
                {"operation": "resize", "input": "a.png"},  # neither width nor height
                {"operation": "crop", "input": "a.png", "rect": {"x": 0, "y": 0, "width": 0}},
                {"operation": "resize", "input": "../b.png", "width": 4},
                {"operation": "sepia", "input": "a.png"},
            )
        ]
        assert [r.status_code for r in refused] == [400] * 4
        assert all(r.json()["error"]["code"] == "VALIDATION_ERROR" for r in refused)
        assert "`$.input`" in refused[2].json()["error"]["message"]
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued
        assert client.get("/v1/usage").json()["balance_micros"] == 0
    no_key = httpx.post(f"{dir_fleet.base_url}/v1/jobs/validate", json={"operation": "resize"})
    assert no_key.status_code == 401
