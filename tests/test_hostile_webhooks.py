"""Webhook targets a hostile tenant might try: every way of writing a non-public address,
judged in strict, allow-private and allow-loopback modes. No test here connects anywhere
but loopback: refusals are checked as pure functions (address literals need no lookup)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from imagefleet.addresses import Refused, check_address
from tests.fleet_harness import Fleet
from tests.hostile_inputs import black_png, grayscale, put
from worker.webhooks import host_header, post

MODES = {"strict": (False, False), "private": (False, True), "loopback": (True, False)}
A, R = True, False  # allowed, refused

# host -> allowed in (strict, allow-private, allow-loopback)
TABLE = {
    "8.8.8.8": (A, A, A),
    "[2606:4700::1111]": (A, A, A),
    "[64:ff9b::808:808]": (A, A, A),  # NAT64 of 8.8.8.8
    "[2002:808:808::1]": (A, A, A),  # 6to4 of 8.8.8.8
    "100.64.0.1": (R, A, R),  # carrier-grade NAT
    "100.100.100.200": (R, R, R),  # cloud metadata inside carrier-grade NAT
    "10.0.0.1": (R, A, R),
    "192.168.1.10": (R, A, R),
    "192.0.2.1": (R, A, R),  # documentation
    "[fc00::1]": (R, A, R),
    "[fec0::1]": (R, A, R),  # site-local
    "[fd00:ec2::254]": (R, R, R),  # cloud metadata (IPv6)
    "127.0.0.1": (R, R, A),
    "127.9.9.9": (R, R, A),
    "2130706433": (R, R, A),  # 127.0.0.1 as one number
    "[::1]": (R, R, A),
    "[::ffff:127.0.0.1]": (R, R, A),  # IPv4-mapped
    "[::127.0.0.1]": (R, R, A),  # IPv4-compatible
    "[64:ff9b::7f00:1]": (R, R, A),  # NAT64
    "[2002:7f00:1::]": (R, R, A),  # 6to4
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]": (R, R, A),  # Teredo, client 127.0.0.1
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]": (R, A, R),  # Teredo, client 192.0.2.45
    "169.254.169.254": (R, R, R),  # link-local: cloud metadata
    "[::ffff:169.254.169.254]": (R, R, R),
    "[::169.254.169.254]": (R, R, R),
    "[64:ff9b::a9fe:a9fe]": (R, R, R),
    "[64:ff9b:1::a9fe:a9fe]": (R, R, R),  # local-use NAT64
    "[64:ff9b:1::a00:1]": (R, A, R),  # local-use NAT64 of 10.0.0.1
    "[2002:a9fe:a9fe::]": (R, R, R),
    "[fe80::1]": (R, R, R),
    "0.0.0.0": (R, R, R),
    "0": (R, R, R),
    "0.1.2.3": (R, R, R),
    "[::]": (R, R, R),
    "[::ffff:0.0.0.0]": (R, R, R),
    "224.0.0.1": (R, R, R),
    "[ff02::1]": (R, R, R),
    "240.0.0.1": (R, R, R),
    "255.255.255.255": (R, R, R),
}
CASES = [
    (host, mode, allowed[i]) for host, allowed in TABLE.items() for i, mode in enumerate(MODES)
]


@pytest.mark.parametrize(("host", "mode", "allowed"), CASES)
def test_address_forms_in_each_mode(host: str, mode: str, allowed: bool) -> None:
    loopback, private = MODES[mode]
    url = f"http://{host}:8443/hook"
    if allowed:
        assert check_address(url, loopback, private)[2] == 8443
    else:
        with pytest.raises(Refused):
            check_address(url, loopback, private)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@8.8.8.8/hook",
        "https://user@8.8.8.8/h",
        "http://:@8.8.8.8/h",
        "http://8.8.8.8\\@127.0.0.1/h",
    ],
)
def test_urls_with_credentials_are_refused(url: str, mode: str) -> None:
    with pytest.raises(Refused, match="credentials|http"):
        check_address(url, *MODES[mode])


def test_every_address_a_name_resolves_to_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80))
        for ip in ("8.8.8.8", "169.254.169.254")
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(Refused, match="169.254.169.254"):
        check_address("http://hooks.example.com/x", allow_loopback=True, allow_private=True)


def test_the_host_header_never_carries_credentials() -> None:
    assert host_header("http://u:p@hooks.example.com:8443/x?y") == "hooks.example.com:8443"
    assert host_header("http://[::1]:81/x") == "[::1]:81"
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        outcome = post(
            f"http://user:secret@127.0.0.1:{port}/h", b"{}", {}, "127.0.0.1", port, "127.0.0.1"
        )
    finally:
        server.server_close()
    assert outcome.ok and seen == [f"127.0.0.1:{port}"]


@pytest.fixture(scope="module")
def uploaded(dir_fleet: Fleet) -> Iterator[Fleet]:
    with dir_fleet.client() as client:
        put(client, "hw.png", black_png())
    yield dir_fleet


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cr3t@127.0.0.1:9/hook",  # the fleet allows loopback, not credentials
        "http://0.0.0.0:9/hook",
        "http://[::]:9/hook",
        "http://100.64.0.1/hook",
        "http://[::ffff:169.254.169.254]/latest",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:a9fe:a9fe::]/latest",
        "http://100.100.100.200/latest",
    ],
)
def test_the_fleet_refuses_them_at_submission(uploaded: Fleet, url: str) -> None:
    with uploaded.client() as client:
        response = client.post("/v1/jobs", json=grayscale("hw.png", webhook_url=url))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "`$.webhook_url`" in error["message"]
    assert "s3cr3t" not in error["message"]
