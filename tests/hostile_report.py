"""Replay the hostile tenant's attacks (issue 13) against one real local fleet with the
default limits and print a Markdown table of what happened: HTTP status or job status and
error code, quoted and charged micro-dollars, wall time, and the cpu pool's peak RSS.

    .venv/bin/python -m tests.hostile_report [--keep]

One fleet (`imagefleet up` via tests/fleet_harness.py) on a free loopback port, with the
default FLEET_MAX_MEGAPIXELS (100 MP; work limit 400 MP) and FLEET_CPU_CONCURRENCY=1 so the
single cpu share process makes peak RSS and busy-pool tricks deterministic (the pool's
reserve process runs only other tenants' jobs while the hostile key holds its share). ATTACKS is the
table: most rows put one input and POST one body, built in tests/hostile_inputs.py; the
fleet, the measurements and the Markdown come from tests/hostile_measure.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from imagefleet.addresses import Refused, check_address
from tests import gateway_attacks as gateway
from tests import hostile_inputs as inputs
from tests import hostile_limits_report as limits
from tests import hostile_measure as measure
from tests import hostile_webhook_attacks
from tests.fleet_harness import Fleet, wait_for_job
from tests.hostile_inputs import SLOW, SLOWER, TINY, grayscale, on_tiny, put
from tests.hostile_measure import Row, error_of, post_job, run_job, wait_running
from tests.hostile_x402_rows import idle_chain_payment, six_payments_two_prices

WATCHDOG_SECONDS = 10 * 60
JOB_TIMEOUT = [120.0]  # seconds a job may take after its POST; cut if the warm-up job fails
FLEET_ENV = {"FLEET_CPU_CONCURRENCY": "1", "FLEET_X402": "dev"}  # x402: the 25.x rows
# The slow job (10 x blur on 3000x2000, "~13 s" before) now takes ~2 s on one
# process: enough for attack 6 (checked), too short to cancel mid-run. Attacks 12 and 16
# use the same steps on a 6000x6000 JPEG (36 MP: 360 MP of work), ~12 s here.
EXPECT_81_MP = f"; expected 81 MP x {inputs.PER_MP} = {81 * inputs.PER_MP}"
WEBHOOKS = ["http://100.64.0.1/", "http://[::ffff:127.0.0.1]/", "http://user:pass@example.com/"]
STREAM_TIMEOUT = httpx.Timeout(15.0)  # connect and read (the headers); bodies are never read


@dataclass
class Attack:
    """Put `upload` (key, builder), then POST `body` (bytes: raw JSON) to /v1/jobs. `wait`:
    "job" runs the job to its end; "admitted" times the POST alone but follows an admitted
    job to its end; "post" times the POST alone."""

    body: dict | bytes
    upload: tuple[str, Callable[[], bytes]] | None = None
    wait: str = "job"
    note: str = ""

    def __call__(self, fleet: Fleet, client: httpx.Client, row: Row) -> None:
        if self.upload:
            key, build = self.upload
            data = build()
            row.details.append(f"input {len(data):,} bytes{self.note}")
            put(client, key, data)
        if self.wait == "job" and isinstance(self.body, dict):
            return row.run(client, self.body, JOB_TIMEOUT[0])
        response, row.seconds = post_job(client, self.body)
        if self.wait == "admitted" and response.status_code < 300:
            began = time.monotonic()
            job = wait_for_job(client, response.json()["id"], timeout=JOB_TIMEOUT[0])
            row.seconds = (row.seconds or 0) + time.monotonic() - began
            return row.job(response.status_code, job)
        row.http(response)


def replaced_while_queued(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    put(client, "victim.png", inputs.black_png())
    replacement = inputs.jpeg(inputs.photo_9000())
    slow = client.post("/v1/jobs", json=SLOW).raise_for_status().json()["id"]
    try:
        wait_running(client, slow)
        started = time.monotonic()
        victim = client.post("/v1/jobs", json=grayscale("victim.png")).raise_for_status()
        row.details.append(
            f"victim quoted {victim.json()['billing']['quoted_micros']} while "
            f"queued ({victim.json()['status']})"
        )
        put(client, "victim.png", replacement)
        busy = client.get(f"/v1/jobs/{slow}").json()["status"]
        row.details.append(
            f"replaced by a 9000x9000 JPEG of {len(replacement):,} bytes; "
            f"the slow job was still {busy} then"
        )
    finally:
        client.delete(f"/v1/jobs/{slow}")
    job = wait_for_job(client, victim.json()["id"], timeout=JOB_TIMEOUT[0])
    row.seconds = time.monotonic() - started
    row.job(victim.status_code, job)
    if busy != "running":
        row.outcome = "INVALID RUN (pool free before the replacement); " + row.outcome


def cancel_running(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    job_id = (
        client.post("/v1/jobs", json={**SLOWER, "output": "slow-out.png"})
        .raise_for_status()
        .json()["id"]
    )
    wait_running(client, job_id)
    time.sleep(3)  # a few of its ~1.2 s steps in
    started = time.monotonic()
    canceled = client.delete(f"/v1/jobs/{job_id}")
    cancel_seconds = time.monotonic() - started
    _, after, _ = run_job(client, grayscale(TINY), JOB_TIMEOUT[0])
    row.seconds = free_seconds = time.monotonic() - started
    final = client.get(f"/v1/jobs/{job_id}").json()
    missing = client.get("/v1/objects/slow-out.png")
    row.job(canceled.status_code, final)
    row.outcome = (
        row.outcome.replace("HTTP", "DELETE", 1)
        + f"; output GET {missing.status_code}; pool free {free_seconds:.2f} s after cancel"
    )
    row.details.append(
        f"DELETE answered {canceled.status_code} "
        f"({canceled.json().get('status')}) in {cancel_seconds:.2f} s; a tiny "
        f"grayscale ?wait=60 submitted right after ended {after.get('status')} "
        f"{free_seconds:.2f} s after the cancel (started_at "
        f"{after.get('started_at')}, canceled job finished_at "
        f"{final.get('finished_at')})"
    )
    time.sleep(0.5)  # give the worker a moment to log the stop, then look for it
    log = fleet.log_file.read_text(errors="replace")
    row.details.append(f"log says 'canceled while running': {'canceled while running' in log}")


def upload_race(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    upload = client.post("/v1/uploads").raise_for_status().json()
    pid = fleet.gateway_pid()
    before = measure.memory_kb(pid)["VmRSS"]
    measure.restart_peak(pid)
    started = time.monotonic()
    racers = inputs.put_racers(upload["uploadUrl"], 40, 47 * 1000 * 1000, timeout=300)
    row.seconds = time.monotonic() - started
    grown = (measure.memory_kb(pid)["VmHWM"] - before) / 1024
    counts = Counter(
        type(r).__name__
        if isinstance(r, httpx.HTTPError)
        else f"{r.status_code} {error_of(r)[0]}".strip()
        for r in racers
    )
    conflicts = sum(v for k, v in counts.items() if k.startswith("409"))
    others = {k: v for k, v in counts.items() if not k.startswith(("201", "409"))}
    row.outcome = (
        f"201 x{counts.get('201', 0)}, 409 x{conflicts}"
        + (f", other {others}" if others else "")
        + f"; gateway peak RSS +{grown:.0f} MiB"
    )
    row.details.append(
        f"results {dict(counts)}; gateway pid {pid} VmRSS before "
        f"{before / 1024:.0f} MiB, peak (VmHWM) +{grown:.0f} MiB"
    )
    stored = client.get(f"/v1/objects/{upload['inputKey']}", timeout=120)
    row.details.append(
        f"stored object: HTTP {stored.status_code}, {len(stored.content):,} "
        f"bytes, starts {stored.content[:8]!r}"
    )


async def _flood(fleet: Fleet, path: str, probe: inputs.OtherTenant, row: Row) -> None:
    """1000 event streams on the hostile key while another tenant's GETs are timed."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=fleet.base_url,
        timeout=STREAM_TIMEOUT,
        limits=limits,
        headers={"Authorization": f"Bearer {fleet.api_key}"},
    ) as hostile:
        responses: list[httpx.Response] = []
        try:
            started = time.monotonic()
            streams = await asyncio.wait_for(inputs.open_streams(hostile, path, 1000), 120)
            row.seconds = time.monotonic() - started
            responses = [r for r in streams if isinstance(r, httpx.Response)]
            failures = Counter(
                type(r).__name__ for r in streams if not isinstance(r, httpx.Response)
            )
            await asyncio.sleep(0.5)  # a few more of the other tenant's GETs with all open
            probe.stop()
            failures.update(probe.failures)
            codes = Counter(r.status_code for r in responses)
            other = {code: n for code, n in codes.items() if code not in (200, 429)}
            kinds: Counter[str] = Counter()
            for response in (r for r in responses if r.status_code != 200):
                await response.aread()
                code, message = error_of(response)
                kinds[f"{response.status_code} {code}: {message[:70]}"] += 1
            row.outcome = (
                f"{codes.get(200, 0)} x 200, {codes.get(429, 0)} x 429"
                + (f", other {other}" if other else "")
                + (f", errors {dict(failures)}" if failures else "")
                + f"; other tenant GETs {dict(Counter(probe.codes))}"
            )
            row.details.append(f"refusals: {dict(kinds)}")
            row.details.append(
                f"other tenant (own thread): {len(probe.codes)} GET /v1/jobs/{{id}} during the "
                f"flood, codes {dict(Counter(probe.codes))}, {measure.spread(probe.times)}; "
                f"before the flood: {measure.spread(probe.baseline)}"
            )
        finally:
            probe.stop(join=False)
            for response in responses:
                await response.aclose()


def event_stream_flood(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    other_key = inputs.new_tenant(fleet, "other", 10_000_000)
    with fleet.client(other_key) as other:
        other_job = other.post("/v1/jobs?wait=30", json=grayscale(TINY)).json()
    row.details.append(f"other tenant's job {other_job['id']} is {other_job['status']}")
    # The hostile key streams a job that stays queued behind two ~12 s ones meanwhile.
    blockers = [
        client.post("/v1/jobs", json=SLOWER).raise_for_status().json()["id"] for _ in range(2)
    ]
    target = client.post("/v1/jobs", json=grayscale(TINY)).raise_for_status().json()["id"]
    try:
        wait_running(client, blockers[0])
        probe = inputs.OtherTenant(fleet, other_key, other_job["id"], STREAM_TIMEOUT)
        probe.start()
        asyncio.run(_flood(fleet, f"/v1/jobs/{target}/events", probe, row))
        status = client.get(f"/v1/jobs/{target}").json()["status"]
        row.details.append(f"target {target} was {status} after the flood")
    finally:
        for job_id in (target, *blockers):
            client.delete(f"/v1/jobs/{job_id}")
    # Wait until the pool is idle again (the canceled blockers stop at their next step).
    run_job(client, grayscale(TINY), JOB_TIMEOUT[0])
    log = fleet.log_file.read_text(errors="replace")
    row.details.append(f"'Too many connections' in the fleet log: {'Too many connections' in log}")


def fair_share(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    """The hostile key queues six slow pipelines; another tenant's 64x64 grayscale, sent
    once the first runs, is timed to its end (before the fair share: behind all six)."""
    other_key = inputs.new_tenant(fleet, "other", 10_000_000)
    hostile = [client.post("/v1/jobs", json=SLOW).raise_for_status().json()["id"] for _ in range(6)]
    try:
        wait_running(client, hostile[0])
        with fleet.client(other_key) as other:
            put(other, "small.png", inputs.small_png())
            status, job, row.seconds = run_job(other, grayscale("small.png"), JOB_TIMEOUT[0])
        row.job(status, job)
        states = Counter(client.get(f"/v1/jobs/{j}").json()["status"] for j in hostile)
        row.outcome += f" (other tenant); the six slow jobs then: {dict(states)}"
    finally:
        for job_id in hostile:
            client.delete(f"/v1/jobs/{job_id}")
    run_job(client, grayscale(TINY), JOB_TIMEOUT[0])  # the pool idle again


def webhook_attack(url: str) -> Callable[[Fleet, httpx.Client, Row], None]:
    def attack(fleet: Fleet, client: httpx.Client, row: Row) -> None:
        # Never let the fleet dial anything but loopback: its own check, in its mode (`up`
        # allows loopback), must refuse the URL or allow loopback only (literals: no lookup).
        for mode, loopback in (("strict", False), ("`up` default, allow-loopback", True)):
            try:
                host, ip, port = check_address(url, allow_loopback=loopback, allow_private=False)
            except Refused as exc:
                row.details.append(f"check_address ({mode}) refuses: {exc}")
                continue
            row.details.append(f"check_address ({mode}) allows: {host} -> {ip}:{port}")
            address = ipaddress.ip_address(ip)
            mapped = getattr(address, "ipv4_mapped", None)
            if loopback and not (address.is_loopback or (mapped and mapped.is_loopback)):
                row.outcome = "NOT SUBMITTED: the fleet would dial a non-loopback address"
                return
        response, row.seconds = post_job(client, grayscale(TINY, webhook_url=url))
        row.http(response)
        if response.status_code < 300:  # accepted: cancel it (its webhook is loopback)
            client.delete(f"/v1/jobs/{response.json()['id']}")
            row.outcome += " (accepted: FLEET_WEBHOOK_ALLOW_LOOPBACK=1, `up`'s default)"
            row.details.append("accepted by the fleet; job canceled at once")

    return attack


def before_auth(
    attack: Callable[[int], Coroutine[Any, Any, list[Any]]],
) -> Callable[[Fleet, httpx.Client, Row], None]:
    """A connection-level attack on the gateway (tests/gateway_attacks.py): its answers and
    the gateway process's peak RSS growth."""

    def run(fleet: Fleet, client: httpx.Client, row: Row) -> None:
        port = int(fleet.base_url.rsplit(":", 1)[1])
        with gateway.peak_of(fleet.gateway_pid()) as peak:
            started = time.monotonic()
            results = asyncio.run(attack(port))
            row.seconds = time.monotonic() - started
        answers = Counter(r.status for r in results if isinstance(r, gateway.Answer))
        closed = [seconds for seconds, sent in results if not sent] if not answers else []
        row.outcome = (
            f"HTTP {dict(answers)}"
            if answers
            else f"{len(closed)} of {len(results)} closed unanswered, the last after"
            f" {max(closed, default=0):.1f} s"
        ) + f"; gateway peak RSS +{peak.grown / 2**20:.0f} MiB"

    return run


BATCH_BAD_KEY = gateway.request_head(
    "POST", "/v1/batches", {"Authorization": "Bearer nonsense"}, gateway.BATCH_BODY
)
BIG_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
DRIP = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 200


async def _drips(port: int) -> list[tuple[float, bytes]]:
    return list(await asyncio.gather(*(gateway.drip(port, DRIP, 1.0, 60) for _ in range(1000))))


def variants_into_a_folder(fleet: Fleet, client: httpx.Client, row: Row) -> None:
    """Issue 25: 11 variants of a 36 MP JPEG (396 MP billed), the last one's key an existing
    folder: before, 23 s of work ended INTERNAL_ERROR (IsADirectoryError), 0 of 118,800."""
    put(client, "trap/dir/x", b"x")
    outputs = [f"trap/v{i}.png" for i in range(10)] + ["trap/dir"]
    body = {
        "operation": "variants",
        "input": "slower.jpg",
        "variants": [{"output": key, "format": "png"} for key in outputs],
    }
    response, row.seconds = post_job(client, body)
    row.http(response)


ATTACKS: list[tuple[str, Callable[[Fleet, httpx.Client, Row], None]]] = [
    (
        "1. TIFF page 1 12000x12000 (mode 1, group4), page 1",
        Attack(
            grayscale("bomb.tif", page=1),
            ("bomb.tif", lambda: inputs.tiff_big_page1(12000)),
            wait="post",
        ),
    ),
    (
        "2. GIF frame 1 patched to 12000x12000, page 1",
        Attack(
            grayscale("bomb.gif", page=1),
            ("bomb.gif", lambda: inputs.gif_big_frame1(12000)),
            wait="admitted",
        ),
    ),
    (
        "3. 9000x9000 JPEG, 260 APP9 segments before SOF",
        Attack(
            grayscale("app9.jpg"),
            ("app9.jpg", lambda: inputs.app9_jpeg(inputs.photo_9000())),
            note=EXPECT_81_MP,
        ),
    ),
    (
        "4. grey 9000x9000 JPEG, junk byte after APP0",
        Attack(
            grayscale("junk.jpg"),
            ("junk.jpg", lambda: inputs.junk_jpeg(inputs.photo_9000())),
            note=EXPECT_81_MP,
        ),
    ),
    (
        "5. TIFF 1x1 page 0 + 9000x9000 page 1, page 1",  # deflate: 243 MB raw is over the limit
        Attack(
            grayscale("page1.tif", page=1),
            ("page1.tif", lambda: inputs.tiff_1x1_then(inputs.photo_9000(), "tiff_adobe_deflate")),
            note=EXPECT_81_MP,
        ),
    ),
    ("6. 8x8 PNG replaced by 81 MP JPEG while queued", replaced_while_queued),
    ("7. 2x2 -> resize 10000x10000 fill", Attack(on_tiny(inputs.resize_fill(10000)))),
    ("8. 2x2 -> extend right/bottom 9998", Attack(on_tiny(inputs.EXTEND_TO_10000))),
    ("9. contact-sheet 100 cells of 990 px", Attack(inputs.CONTACT_SHEET)),
    (
        "10. pipeline resize 10000x10000 + adjust",
        Attack(on_tiny(inputs.upscale_pipeline(10000, 1, 1.2))),
    ),
    (
        "11. pipeline resize 10000x10000 + 9 adjust",
        Attack(on_tiny(inputs.upscale_pipeline(10000, 9, 1.2))),
    ),
    ("12. cancel a running slow pipeline (output key)", cancel_running),
    ("13. 40 concurrent 47 MB PUTs to one signed URL", upload_race),
    ("14. JSON nested 5000 deep on POST /v1/jobs", Attack(inputs.DEEP_JOB, wait="post")),
    (
        "15a. from-html 65535x65535",
        Attack({"operation": "from-html", "html": "x", **inputs.HUGE_VIEWPORT}, wait="post"),
    ),
    (
        "15b. from-html fullPage, 200000 px tall div",
        Attack({"operation": "from-html", "fullPage": True, "html": inputs.TALL_PAGE}),
    ),
    ("16. 1000 concurrent event streams, one key", event_stream_flood),
    *[(f"17{'abc'[i]}. webhook_url {url}", webhook_attack(url)) for i, url in enumerate(WEBHOOKS)],
    *hostile_webhook_attacks.ATTACKS,  # issue 25: the webhooks pool
    ("25.4a x402: 6 paid jobs at once, wallet holds 2 prices", six_payments_two_prices),
    ("25.4b x402: paid valid from now-5 s, dev chain idle 15 s", idle_chain_payment),
    *limits.ATTACKS,  # issue 25's smaller ones: seeks, flat reads, header walks, served objects
    (
        "25.5a 120 x 13.7 MB POST /v1/batches, made-up key",
        before_auth(lambda port: gateway.many(port, 120, BATCH_BAD_KEY, gateway.BATCH_BODY)),
    ),
    (
        "25.5b 30 requests of 20 MB headers",
        before_auth(
            lambda port: gateway.many(port, 30, BIG_HEADERS, gateway.BIG_HEADER, b"\r\n\r\n")
        ),
    ),
    ("25.5c 1000 connections dripping a header byte a second", before_auth(_drips)),
    ("25.2b another tenant's 64x64 grayscale behind 6 slow pipelines", fair_share),
    ("25.1 variants (396 MP), a key names a folder", variants_into_a_folder),
    (
        "25.2a 188-byte SVG, feMorphology radius 150 at 1 MP (resvg holds the GIL)",
        Attack(
            {"operation": "convert", "input": "morph.svg", "format": "png"},
            ("morph.svg", lambda: inputs.morphology_svg(150)),
            note="; drawn apart, once: TIMEOUT at FLEET_VECTOR_TIMEOUT",
        ),
    ),
    (
        "25.2c quality auto, SSIM 0.999, 100 MP 1-px checkerboard, flat sampled tiles",
        Attack(
            {
                "operation": "convert",
                "input": "board.png",
                "format": "jpeg",
                "quality": "auto",
                "ssim": 0.999,
            },
            ("board.png", lambda: inputs.checkerboard_with_flat_tiles(10000)),
        ),
    ),
]


def warm_up(fleet: Fleet, client: httpx.Client, notes: list[str]) -> None:
    put(client, "slow.jpg", inputs.slow_jpeg())
    put(client, "slower.jpg", inputs.slower_jpeg())
    with measure.PoolPeak(fleet) as idle:
        time.sleep(0.2)
    notes.append(
        f"cpu pool processes at start: {sorted(idle.pids)}; idle peak RSS "
        f"{measure.mib(idle.peak)}; clear_refs permitted: {idle.clear_ok}"
    )
    status, warm, seconds = run_job(client, grayscale(TINY), timeout=60)
    notes.append(f"warm-up job: HTTP {status}, {warm.get('status')} in {seconds:.2f} s")
    if warm.get("status") != "succeeded":  # broken workers: fail fast, not 240 s a row
        JOB_TIMEOUT[0] = 15.0
        notes.append(
            "**the warm-up job did not succeed: the workers are broken; job "
            "waits cut to 15 s (see the fleet log)**"
        )


def main() -> int:
    return measure.replay(ATTACKS, FLEET_ENV, WATCHDOG_SECONDS, 120, warm_up)


if __name__ == "__main__":
    sys.exit(main())
