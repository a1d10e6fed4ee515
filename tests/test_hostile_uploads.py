"""Hostile uploads (issue 13): bodies stream to storage under the size limit instead of
sitting in gateway memory, signed upload URLs are single-use, empty bodies are refused alike
on every route, and a client that hangs up mid-upload leaves one INFO line and no object.
Every test runs on both object stores."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.fleet_harness import Fleet
from tests.hostile_inputs import BLOCK, MiB, put_racers, replies, stream
from tests.hostile_measure import memory_kb, restart_peak


def new_upload(fleet: Fleet) -> dict:
    with fleet.client() as client:
        response = client.post("/v1/uploads")
    assert response.status_code == 201, response.text
    return response.json()


def stored(fleet: Fleet, key: str) -> bytes | None:
    with fleet.client() as client:
        response = client.get(f"/v1/objects/{key}")
    assert response.status_code in (200, 404), response.text
    return response.content if response.status_code == 200 else None


def temp_files(fleet: Fleet) -> list[Path]:
    """Half-written objects of the directory store (none on S3, where the SDK aborts them)."""
    return list((fleet.var_dir / "objects").rglob(".tmp-*"))


def test_gateway_rss_stays_flat_under_40_concurrent_47mb_uploads(fleet: Fleet) -> None:
    size = 47 * 1000 * 1000
    pid = fleet.gateway_pid()
    before = memory_kb(pid)["VmRSS"]
    restart_peak(pid)  # restart VmHWM (the peak) from now

    def one(i: int) -> tuple[int, str]:
        headers = {"Content-Length": str(size)}
        if i % 2:  # half through signed upload URLs, half through PUT /v1/objects
            upload = new_upload(fleet)
            response = httpx.put(
                upload["uploadUrl"], content=stream(size, b"%d" % i), headers=headers, timeout=300
            )
            return response.status_code, upload["inputKey"]
        with fleet.client() as client:
            client.timeout = httpx.Timeout(300)
            response = client.put(
                f"/v1/objects/rss/{i}.bin", content=stream(size, b"%d" % i), headers=headers
            )
        return response.status_code, f"rss/{i}.bin"

    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(40)))
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"gateway RSS {before / 1024:.0f} MB before, peak +{grown_mb:.0f} MB")
    assert [status for status, _ in results] == [201] * 40
    assert grown_mb < 300, f"the gateway's peak RSS grew {grown_mb:.0f} MB"
    got = stored(fleet, results[7][1])
    assert got is not None and len(got) == size and got.startswith(b"7" + BLOCK[1:1024])


def test_a_signed_upload_url_is_single_use(fleet: Fleet) -> None:
    upload = new_upload(fleet)
    first = httpx.put(upload["uploadUrl"], content=b"first body", timeout=30)
    assert first.status_code == 201, first.text
    again = httpx.put(upload["uploadUrl"], content=b"second body", timeout=30)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "UPLOAD_URL_USED"
    assert stored(fleet, upload["inputKey"]) == b"first body"


def test_concurrent_puts_to_one_signed_url_store_exactly_one(fleet: Fleet) -> None:
    upload = new_upload(fleet)
    responses = replies(put_racers(upload["uploadUrl"], 12, 2 * MiB, timeout=60))
    winners = [i for i, r in enumerate(responses) if r.status_code == 201]
    assert len(winners) == 1, [r.status_code for r in responses]
    for i, response in enumerate(responses):
        if i != winners[0]:
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "UPLOAD_URL_USED"
    body = stored(fleet, upload["inputKey"])
    assert body is not None and body == b"".join(stream(2 * MiB, b"racer-%02d" % winners[0]))


def test_an_empty_body_is_refused_alike_on_every_upload_route(fleet: Fleet) -> None:
    upload = new_upload(fleet)
    with fleet.client() as client:
        direct = client.put("/v1/objects/empty.bin", content=b"")
    signed = httpx.put(upload["uploadUrl"], content=b"", timeout=30)
    assert direct.status_code == signed.status_code == 400, (direct.text, signed.text)
    assert direct.json() == signed.json()
    assert direct.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stored(fleet, "empty.bin") is None and stored(fleet, upload["inputKey"]) is None
    # A refused PUT does not use up the URL.
    assert httpx.put(upload["uploadUrl"], content=b"now", timeout=30).status_code == 201
    assert stored(fleet, upload["inputKey"]) == b"now"


def test_a_streamed_body_over_the_limit_is_413_and_stores_nothing(fleet: Fleet) -> None:
    upload = new_upload(fleet)
    over = upload["maxBytes"] + 1  # chunked, no Content-Length: refused while it streams
    with fleet.client() as client:
        client.timeout = httpx.Timeout(120)
        direct = client.put("/v1/objects/too-big.bin", content=stream(over))
    signed = httpx.put(upload["uploadUrl"], content=stream(over), timeout=120)
    for response in (direct, signed):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stored(fleet, "too-big.bin") is None and stored(fleet, upload["inputKey"]) is None
    assert temp_files(fleet) == []
    # The limit itself is fine, and the refused PUT did not use up the URL.
    exact = httpx.put(upload["uploadUrl"], content=stream(upload["maxBytes"]), timeout=120)
    assert exact.status_code == 201, exact.text
    assert len(stored(fleet, upload["inputKey"]) or b"") == upload["maxBytes"]


def _hang_up_mid_upload(fleet: Fleet, path: str, auth: bool) -> None:
    """Declare 20 MiB, send 3 MiB, close the socket."""
    url = urlsplit(fleet.base_url)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {20 * MiB}\r\n"
        + (f"Authorization: Bearer {fleet.api_key}\r\n" if auth else "")
        + "\r\n"
    )
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + BLOCK * 3)
        time.sleep(0.3)


def test_a_client_hanging_up_mid_upload_logs_one_info_line_and_stores_nothing(fleet: Fleet) -> None:
    upload = new_upload(fleet)
    signed = urlsplit(upload["uploadUrl"])
    offset = fleet.log_file.stat().st_size
    _hang_up_mid_upload(fleet, "/v1/objects/hung-up.bin", auth=True)
    _hang_up_mid_upload(fleet, f"{signed.path}?{signed.query}", auth=False)
    deadline = time.monotonic() + 15
    while True:
        log = fleet.log_file.read_bytes()[offset:].decode(errors="replace")
        lines = [line for line in log.splitlines() if "disconnected" in line]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 2 and all(" INFO " in line for line in lines), log
    assert "Traceback" not in log and " ERROR " not in log, log
    assert stored(fleet, "hung-up.bin") is None and stored(fleet, upload["inputKey"]) is None
    assert temp_files(fleet) == []
    # The abandoned PUT did not use up the URL.
    assert httpx.put(upload["uploadUrl"], content=b"retry", timeout=30).status_code == 201
