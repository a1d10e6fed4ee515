"""The gateway before authentication (issue 25): bodies with no valid key are answered `401`
unread, headers over the limit `431`, bodies past the buffer budget `503`; connections that
drip their headers or body are closed in bounded time. Memory is the gateway process's own,
from /proc, on the session fleet."""

from __future__ import annotations

import asyncio
import json

import httpx
from starlette.types import Receive, Scope, Send

from gateway.buffers import BodyBudget
from imagefleet.settings import load_settings
from tests import gateway_attacks as attacks
from tests.conftest import TEST_BODY_TIMEOUT
from tests.fleet_harness import Fleet

DEFAULTS = load_settings({})  # the fleet runs with the default limits but the body timeout
MAX_GROWTH = 100 * 2**20


def _port(fleet: Fleet) -> int:
    return int(fleet.base_url.rsplit(":", 1)[1])


def _error(answer: attacks.Answer) -> str:
    assert answer.headers.get("content-type") == "application/json", answer
    return json.loads(answer.body)["error"]["code"]


def test_unauthenticated_bodies_are_answered_401_unread(dir_fleet: Fleet) -> None:
    port, pid = _port(dir_fleet), dir_fleet.gateway_pid()
    bad_key = attacks.request_head(
        "POST", "/v1/batches", {"Authorization": "Bearer nonsense"}, attacks.BATCH_BODY
    )
    no_key = attacks.request_head("POST", "/v1/jobs", {}, 5_600_000)
    with attacks.peak_of(pid) as peak:
        batches = asyncio.run(attacks.many(port, 120, bad_key, attacks.BATCH_BODY))
        jobs = asyncio.run(attacks.many(port, 40, no_key, 5_600_000))
    assert [a.status for a in batches + jobs] == [401] * 160
    assert {_error(a) for a in batches + jobs} == {"UNAUTHORIZED"}
    # 120 x 13.7 MB + 40 x 5.6 MB were sent; buffered, they were 1.9 GB of this process.
    assert peak.grown < MAX_GROWTH, f"the gateway grew {peak.grown / 2**20:.0f} MiB"


def test_a_refused_small_body_keeps_the_connection(dir_fleet: Fleet) -> None:
    """Only an answer that leaves a body unread ends the connection: a whole small request
    refused 401 is followed by a second request on the same connection."""
    with httpx.Client(base_url=dir_fleet.base_url, timeout=30) as client:
        refused = client.post("/v1/jobs", json={"operation": "grayscale", "input": "a.png"})
        again = client.get("/livez")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
    assert again.status_code == 200
    assert refused.extensions["network_stream"] is again.extensions["network_stream"]


def test_headers_over_the_limit_are_answered_431_before_they_are_read(dir_fleet: Fleet) -> None:
    port, pid = _port(dir_fleet), dir_fleet.gateway_pid()
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    with attacks.peak_of(pid) as peak:
        answers = asyncio.run(attacks.many(port, 30, head, attacks.BIG_HEADER, b"\r\n\r\n"))
    assert [a.status for a in answers] == [431] * 30
    assert {_error(a) for a in answers} == {"HEADERS_TOO_LARGE"}
    assert str(DEFAULTS.max_header_bytes) in json.loads(answers[0].body)["error"]["message"]
    assert peak.grown < MAX_GROWTH, f"the gateway grew {peak.grown / 2**20:.0f} MiB"
    # Headers just under the limit are served.
    filler = DEFAULTS.max_header_bytes - len(head) - 200
    under = asyncio.run(attacks.exchange(port, head, filler, b"\r\n\r\n"))
    assert under.status == 200, under


def test_dripped_headers_are_closed_after_the_header_timeout(dir_fleet: Fleet) -> None:
    port = _port(dir_fleet)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 100

    async def dripping() -> list[tuple[float, bytes]]:
        give_up = DEFAULTS.header_timeout + 30
        return list(
            await asyncio.gather(*(attacks.drip(port, head, 1.0, give_up) for _ in range(200)))
        )

    closed = asyncio.run(dripping())  # TimeoutError if one is still open at the deadline
    assert all(answer == b"" for _, answer in closed)  # closed, never served
    with httpx.Client(base_url=dir_fleet.base_url, timeout=30) as client:
        assert client.get("/livez").status_code == 200


def test_a_dripped_body_is_refused_after_the_body_timeout(dir_fleet: Fleet) -> None:
    head = attacks.request_head(
        "PUT", "/v1/objects/drip.bin", {"Authorization": f"Bearer {dir_fleet.api_key}"}, 100_000
    )
    _, answer = asyncio.run(  # TimeoutError if still open at the deadline
        attacks.drip(_port(dir_fleet), b"x" * 100_000, 0.5, TEST_BODY_TIMEOUT + 30, first=head)
    )
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b'"VALIDATION_ERROR"' in answer and b"did not arrive within" in answer
    with dir_fleet.client() as client:
        assert client.get("/v1/objects/drip.bin").status_code == 404  # nothing kept


async def _over_budget(
    port: int, key: str, size: int, count: int
) -> tuple[list[attacks.Answer], list[attacks.Answer]]:
    """`count` keyed POSTs declaring `size` bytes, headers only: the answers that came before
    any body was sent; then, once the others sent their bodies, theirs."""
    head = attacks.request_head("POST", "/v1/jobs", {"Authorization": f"Bearer {key}"}, size)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        for _, writer in conns:
            writer.write(head)
        reads = [asyncio.ensure_future(attacks.read_answer(reader)) for reader, _ in conns]
        await asyncio.wait(reads, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(1)  # the other refusals, which come at once
        answered = [read.done() for read in reads]
        for (_, writer), done in zip(conns, answered, strict=True):
            if not done:
                writer.write(b"x" * size)
        early = [read.result() for read, done in zip(reads, answered, strict=True) if done]
        late = [
            await asyncio.wait_for(read, 60)
            for read, done in zip(reads, answered, strict=True)
            if not done
        ]
        return early, late
    finally:
        for _, writer in conns:
            writer.close()


def test_bodies_past_the_buffer_budget_are_answered_503_unread(dir_fleet: Fleet) -> None:
    size = 5_500_000
    fits = DEFAULTS.max_buffered_bytes // size
    early, late = asyncio.run(_over_budget(_port(dir_fleet), dir_fleet.api_key, size, fits + 3))
    assert [a.status for a in early] == [503] * 3
    assert {_error(a) for a in early} == {"UNAVAILABLE"}
    assert all(a.headers.get("retry-after") == "1" for a in early)
    # The ones that fit were read: their bodies are not JSON.
    assert [(a.status, _error(a)) for a in late] == [(400, "VALIDATION_ERROR")] * fits
    with dir_fleet.client() as client:  # every share was given back
        assert client.post("/v1/jobs", content=b"x" * size).status_code == 400


def test_keyless_requests_share_half_the_budget_and_every_share_is_given_back() -> None:
    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        assert budget.take(scope, 30, keyless=True)
        assert budget.take(scope, 20, keyless=True)
        assert not budget.take({}, 1, keyless=True)  # half is held by keyless bodies
        budget.give_back(scope)  # done with its body before it answers (a `?wait`)
        assert budget.take(scope, 50, keyless=True)
        assert budget.take({}, 50, keyless=False)
        assert not budget.take({}, 1, keyless=False)  # the whole is held

    budget = BodyBudget(reads, limit=100)
    asyncio.run(budget({"type": "http"}, None, None))  # type: ignore[arg-type]
    assert (budget.held, budget.keyless) == (50, 0)  # the request's 50 given back, not the rest
