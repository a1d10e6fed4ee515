"""The object-store contract, on a directory and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from minio.error import S3Error

from storage import ObjectNotFound, ObjectStore, open_store
from tests.fleet_harness import SeaweedS3


@pytest.fixture(params=["directory", pytest.param("s3", marks=pytest.mark.fleet)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "directory":
        return open_store(f"file://{tmp_path / 'objects'}")
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    return open_store(seaweed.url("contract-test"))


def test_put_get_size_and_overwrite(store: ObjectStore) -> None:
    store.put("tenants/t1/a/b.bin", b"first", "application/octet-stream")
    assert store.get("tenants/t1/a/b.bin") == b"first"
    assert store.size("tenants/t1/a/b.bin") == 5
    first = store.stat("tenants/t1/a/b.bin")
    store.put("tenants/t1/a/b.bin", b"second!", "application/octet-stream")
    assert store.get("tenants/t1/a/b.bin") == b"second!"
    assert store.size("tenants/t1/a/b.bin") == 7
    second = store.stat("tenants/t1/a/b.bin")
    assert first is not None and second is not None and first.size == 5 and second.size == 7
    assert first.version != second.version  # what INPUT_CHANGED compares


def test_missing_objects(store: ObjectStore) -> None:
    assert store.size("tenants/t1/none") is None and store.stat("tenants/t1/none") is None
    with pytest.raises(ObjectNotFound):
        store.get("tenants/t1/none")
    store.check()


def test_s3_refuses_wrong_credentials(seaweed: SeaweedS3) -> None:
    good = open_store(seaweed.url("creds-test"))
    good.put("tenants/t/x", b"x", "text/plain")
    bad = open_store(seaweed.url("creds-test").replace("fleet-test-secret", "wrong-secret"))
    with pytest.raises(S3Error) as caught:
        bad.get("tenants/t/x")
    assert caught.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")


def test_unknown_storage_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_store("ftp://example/bucket")


def test_ranged_reads(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4
    store.put("tenants/t1/r.bin", data, "application/octet-stream")
    assert store.get_range("tenants/t1/r.bin", 10, 5) == data[10:15]
    assert store.get_range("tenants/t1/r.bin", 1020, 100) == data[1020:]
    with pytest.raises(ObjectNotFound):
        store.get_range("tenants/t1/none", 0, 4)


def test_sweep_removes_only_old_job_outputs(store: ObjectStore) -> None:
    import time

    store.put("tenants/t2/jobs/job_1/output.png", b"old output", "image/png")
    store.put("tenants/t2/jobs/job_1/input", b"old input", "application/octet-stream")
    store.put("tenants/t2/mine.png", b"a user's own object", "image/png")
    assert store.sweep(time.time() - 3600) == 0  # nothing is an hour old yet
    assert store.sweep(time.time() + 5) == 2
    assert store.size("tenants/t2/jobs/job_1/output.png") is None
    assert store.size("tenants/t2/mine.png") == len(b"a user's own object")


class _Failing(io.RawIOBase):
    """A body that breaks after `good` bytes, like a client that hangs up."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("the body broke off")
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x5a" * n
        self.left -= n
        return n


def test_put_stream_round_trips_a_multipart_sized_object(
    store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(1 << 20) * 11  # over two 5 MiB S3 parts
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        store.put_stream("tenants/t3/big.bin", f, len(data), "application/octet-stream")
    assert store.size("tenants/t3/big.bin") == len(data)
    assert store.get("tenants/t3/big.bin") == data


@pytest.mark.parametrize(
    "stream",
    [lambda: _Failing(7 << 20), lambda: io.BytesIO(b"x" * 100)],
    ids=["breaks-mid-way", "shorter-than-declared"],
)
def test_a_failed_put_stream_stores_nothing(
    store: ObjectStore, tmp_path: Path, stream: Callable[[], BinaryIO]
) -> None:
    store.put("tenants/t3/kept.bin", b"the old object", "application/octet-stream")
    for key in ("tenants/t3/kept.bin", "tenants/t3/new.bin"):
        with pytest.raises(OSError):
            store.put_stream(key, stream(), 12 << 20, "application/octet-stream")
    assert store.get("tenants/t3/kept.bin") == b"the old object"
    assert store.size("tenants/t3/new.bin") is None
    assert list((tmp_path / "objects").rglob(".tmp-*")) == []


def test_download_links_are_signed_for_the_public_endpoint(
    seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet talks to S3 at one address; clients fetch links at another (`?public=`)."""
    import httpx

    public = f"http://localhost:{seaweed.port}"  # the same server, by another name
    store = open_store(seaweed.url("public-test") + f"?public={public}")
    store.put("tenants/t/jobs/j/output.png", b"pixels", "image/png")
    url = store.presign("GET", "tenants/t/jobs/j/output.png", 60)
    assert url is not None and url.startswith(public + "/public-test/")
    assert httpx.get(url).content == b"pixels"  # the signature holds for that host
    inner = open_store(seaweed.url("public-test")).presign("GET", "tenants/t/jobs/j/output.png", 60)
    assert inner is not None and inner.startswith(f"http://127.0.0.1:{seaweed.port}/")
    monkeypatch.setenv("FLEET_S3_PUBLIC_URL", public)  # the stack's way: beside the URL
    by_env = open_store(seaweed.url("public-test")).presign(
        "GET", "tenants/t/jobs/j/output.png", 60
    )
    assert by_env is not None and by_env.startswith(public + "/public-test/")
