"""The web console (gateway/console/, docs/console.md) in real headless Chromium, against a
real fleet: served under a strict Content-Security-Policy that it never trips; sign-in keeps
the key in the tab's sessionStorage and sends it only as the Authorization header; the try
page's form, generated from the operation's schema, runs a resize whose output the page
shows at the size asked, at the cost the API charged; the job is in the live list and on its
own page with its spec and images; the usage page shows the API's balance and charges; and
another tenant sees none of it.

`CONSOLE_SCREENSHOTS=docs/console .venv/bin/pytest tests/test_console.py` also saves a
screenshot of each page there (docs/console.md shows them); a plain run writes nothing."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway import console_api
from tests import images
from tests.browser import Browser, Watched
from tests.fleet_harness import ROOT, Fleet
from tests.fleet_helpers import TERMINAL, wait_all_ended
from tests.hostile_inputs import new_tenant

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
pytestmark = pytest.mark.filterwarnings("ignore:remove loop argument:DeprecationWarning")
CREDIT = 50_000_000  # micro-$ each tenant of these tests starts with
WIDTH, HEIGHT = 480, 320  # the uploaded photo
WRONG_KEY = "if_not-a-real-key"


def money(micros: int) -> str:
    """Micro-dollars as the console writes them, computed here independently."""
    return f"${micros // 1_000_000}.{micros % 1_000_000:06d}"


def js_number(value: float) -> str:
    """A number as JavaScript's String() writes it (shortest round-trip, no `.0`)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "harbour.png"
    path.write_bytes(images.encode(images.photo_like(WIDTH, HEIGHT, seed=3), "PNG"))
    return path


async def _screenshot(browser: Browser, watched: Watched, name: str) -> None:
    if SHOTS:
        await watched.js("window.scrollTo(0, 0)")
        await browser.screenshot(watched, ROOT / SHOTS / f"{name}.png")


async def _open(browser: Browser, fleet: Fleet, incognito: bool = False) -> Watched:
    watched = await browser.page(incognito)
    response = await watched.page.goto(f"{fleet.base_url}/console", {"waitUntil": "load"})
    assert response.status == 200
    assert response.headers["content-security-policy"] == console_api.CSP
    await watched.wait("!document.getElementById('sign-in').hidden")
    return watched


async def _sign_in(watched: Watched, key: str) -> None:
    page = watched.page
    await page.type("#api-key", key)
    await page.click("#sign-in-form button[type=submit]")
    await watched.wait("document.getElementById('view').dataset.ready === 'jobs'")


async def _signed_in(browser: Browser, fleet: Fleet, key: str, incognito: bool = False) -> Watched:
    watched = await _open(browser, fleet, incognito)
    await _sign_in(watched, key)
    return watched


async def _clean(watched: Watched, *keys: str) -> None:
    """Nothing went wrong on the page, and no key went anywhere but an Authorization header."""
    assert watched.problems == []
    assert await watched.violations() == []
    assert watched.requests, "the page made no request at all"
    for _, url, auth in watched.requests:
        assert not any(key in url for key in keys), url
        if "/v1/" in url:
            assert auth is not None and auth.startswith("Bearer ") and auth[7:] in keys, url
    assert not any(key in watched.page.url for key in keys)


def _wait_job(fleet: Fleet, key: str, spec: dict) -> dict:
    with fleet.client(key) as client:
        job = client.post("/v1/jobs?wait=30", json=spec)
        assert job.status_code == 200, job.text  # ended within the wait
        return job.json()


def _upload(fleet: Fleet, key: str, name: str, photo: Path) -> None:
    with fleet.client(key) as client:
        client.put(f"/v1/objects/{name}", content=photo.read_bytes()).raise_for_status()


def test_the_console_is_served_with_a_strict_policy_and_nothing_else(dir_fleet: Fleet) -> None:
    console = ROOT / "gateway" / "console"
    served = {p.name for p in console.iterdir() if p.suffix in console_api.CONTENT_TYPES}
    assert {"index.html", "console.js", "console.css"} <= served == set(console_api.FILES)
    with httpx.Client(base_url=dir_fleet.base_url, timeout=30) as client:
        page = client.get("/console")
        assert page.status_code == 200 and page.content == (console / "index.html").read_bytes()
        for name in sorted(served):
            answer = client.get(f"/console/{name}")
            assert answer.status_code == 200, name
            assert answer.content == (console / name).read_bytes()
            kind = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
            assert answer.headers["content-type"].startswith(kind[Path(name).suffix])
            for reply in (page, answer):
                policy = reply.headers["content-security-policy"]
                assert "script-src 'self';" in policy and "default-src 'none'" in policy
                assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
                assert reply.headers["x-content-type-options"] == "nosniff"
            again = client.get(
                f"/console/{name}", headers={"If-None-Match": answer.headers["etag"]}
            )
            assert again.status_code == 304 and again.content == b""
        # Only the files read at start: nothing else of the checkout, however it is named.
        for path in (
            "/console/console_api.py",
            "/console/..%2Fconsole_api.py",
            "/console/%2e%2e%2f%2e%2e%2fpyproject.toml",
            "/console/..%5Capp.py",
            "/console/nope.js",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "NOT_FOUND"
        assert client.get("/console/").headers["location"].endswith("/console")
    # Nothing the CSP would have to allow: no inline script, handler or style in the page,
    # and the scripts build no code from strings nor HTML from data.
    html = (console / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script type="module" src="/console/console.js">'
    ]
    assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=|<style", html, re.IGNORECASE)
    for script in console.glob("*.js"):
        source = script.read_text()
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
            assert unsafe not in source, (script.name, unsafe)
        assert "localStorage" not in source and ".style." not in source, script.name


def test_pools_answer_each_queue_depth_and_what_runs_there(dir_fleet: Fleet) -> None:
    """GET /v1/pools (the usage page's queues): the key's to ask, each pool's operations as
    GET /v1/operations routes them, its depth as Redis holds the queue."""
    assert httpx.get(f"{dir_fleet.base_url}/v1/pools").status_code == 401
    with dir_fleet.client() as client:
        pools = client.get("/v1/pools").json()["pools"]
        ops = client.get("/v1/operations").json()["operations"]
    assert [p["name"] for p in pools] == ["cpu", "ocr", "render", "webhooks"]
    for pool in pools:
        assert pool["operations"] == sorted(o["name"] for o in ops if o["queue"] == pool["name"])
    assert pools[-1]["operations"] == []  # webhooks: deliveries, no operation
    # Celery's Redis queues, read directly, one after the other: equal while the fleet is
    # idle between tests, as it is here.
    depths = {p["name"]: p["queued"] for p in pools}
    broker = redis.Redis.from_url(dir_fleet.redis_url)
    assert depths == {name: broker.llen(name) for name in depths}


def test_sign_in_keeps_the_key_in_the_tab_and_out_of_urls(
    dir_fleet: Fleet, browser: Browser
) -> None:
    key = new_tenant(dir_fleet, "console-in-", CREDIT)
    with dir_fleet.client(key) as client:
        account = client.get("/v1/usage").json()["account"]

    async def flow() -> Watched:
        watched = await _open(browser, dir_fleet)
        page = watched.page
        await _screenshot(browser, watched, "sign-in")
        # A wrong key: refused, said so, and not kept.
        await page.type("#api-key", WRONG_KEY)
        await page.click("#sign-in-form button[type=submit]")
        await watched.wait("document.getElementById('sign-in-error').textContent")
        assert "unknown or disabled" in await watched.text("#sign-in-error")
        assert await watched.js("sessionStorage.length") == 0
        assert await watched.js("document.getElementById('sign-in').hidden") is False
        # The browser logs the refused request (401) as an error: expected here, once.
        refused = [p for p in watched.problems if "401" in p]
        assert len(refused) == 1, watched.problems
        watched.problems.remove(refused[0])
        await watched.js("document.getElementById('api-key').value = ''")

        await _sign_in(watched, key)
        stored = await watched.js("JSON.stringify(Object.entries(sessionStorage))")
        assert json.loads(stored) == [["imagefleet.apiKey", key]]
        assert await watched.js("localStorage.length") == 0
        assert await watched.text("#who") == account
        assert page.url.endswith("/console#/jobs")
        assert await watched.js("document.getElementById('api-key').value") == ""
        # A reload of the tab stays signed in; signing out forgets the key.
        await page.reload({"waitUntil": "load"})
        await watched.wait("document.getElementById('view').dataset.ready === 'jobs'")
        await page.click("#sign-out")
        await watched.wait("!document.getElementById('sign-in').hidden")
        assert await watched.js("sessionStorage.length") == 0
        await _clean(watched, key, WRONG_KEY)
        return watched

    browser.run(flow())


def test_a_resize_from_the_generated_form_shows_its_output_cost_job_and_images(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-try-", CREDIT)
    with dir_fleet.client(key) as client:
        ops = {op["name"]: op for op in client.get("/v1/operations").json()["operations"]}
    per_mp = ops["resize"]["price"]["per_mp_micros"]
    expected_micros = math.ceil(per_mp * max(1.0, WIDTH * HEIGHT / 1e6))

    async def flow() -> str:
        watched = await _signed_in(browser, dir_fleet, key)
        page = watched.page
        await watched.goto_view("#/try", "try")
        # Each operation's form is its schema's: every field but the two the page fills.
        for name, op in ops.items():
            schema = op["schema"]["$defs"][op["schema"]["$ref"].rsplit("/", 1)[1]]
            await page.select("#try-op", name)
            names = await watched.js(
                "[...document.querySelectorAll('#try-form [name]')].map(n => n.name)"
            )
            assert {n.split(".")[1] for n in names} == set(schema["properties"]) - {
                "operation",
                "input",
            }, name
        await page.select("#try-op", "resize")
        assert await watched.js("document.getElementById('f-width').type") == "number"
        assert await watched.js("document.getElementById('f-fit').tagName") == "SELECT"

        upload = await page.J("#try-file")
        await upload.uploadFile(str(photo))
        await page.type("#f-width", "120")
        await page.click("#try-run")
        size = await watched.wait(
            "(() => { const i = document.getElementById('try-image');"
            " return i && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null })()"
        )
        assert size == [120, round(HEIGHT * 120 / WIDTH)]
        job_id = await watched.text("#try-job")
        shown_micros = int(await page.Jeval("#try-cost", "n => n.dataset.micros"))
        shown = await watched.text("#try-cost")
        with dir_fleet.client(key) as client:
            job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["spec"]["width"] == 120
        assert job["spec"]["input"].startswith("console/") and job["spec"]["input"].endswith(
            "harbour.png"
        )
        assert job["billing"]["state"] == "captured"
        assert shown_micros == job["billing"]["charged_micros"] == expected_micros
        assert shown == money(expected_micros)
        await _screenshot(browser, watched, "try")

        # The job in the list, with its status and cost.
        await watched.goto_view("#/jobs", "jobs")
        row = f"#jobs-body tr[data-job='{job_id}']"
        await watched.wait(f'!!document.querySelector("{row}")')
        assert await page.Jeval(f"{row} .status", "n => n.dataset.status") == "succeeded"
        assert await watched.text(f"{row} td.cost") == money(expected_micros)
        assert await watched.js("document.querySelectorAll('#jobs-body tr').length") == 1

        # Its page: the spec as the API has it, the input and output side by side.
        await watched.js("delete document.getElementById('view').dataset.ready")
        await page.click(f"{row} a")
        await watched.wait("document.getElementById('view').dataset.ready === 'jobs'")
        sizes = await watched.wait(
            "(() => { const i = document.getElementById('job-input'),"
            " o = document.getElementById('job-output');"
            " return i && o && i.naturalWidth && o.naturalWidth"
            " ? [[i.naturalWidth, i.naturalHeight], [o.naturalWidth, o.naturalHeight]] : null })()"
        )
        assert sizes == [[WIDTH, HEIGHT], [120, 80]]
        assert json.loads(await watched.text("#job-spec")) == job["spec"]
        assert json.loads(await watched.text("#job-result")) == job["result"]
        assert await watched.text("#job-cost") == money(job["billing"]["charged_micros"])
        assert page.url.endswith(f"/console#/jobs/{job_id}")
        await _screenshot(browser, watched, "job")
        await _clean(watched, key)
        return job_id

    browser.run(flow())


def test_the_usage_page_shows_the_api_balance_charges_and_queues(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-usage-", CREDIT)
    _upload(dir_fleet, key, "harbour.png", photo)
    for spec in (
        {"operation": "resize", "input": "harbour.png", "width": 200},
        {"operation": "resize", "input": "harbour.png", "width": 100},
        {"operation": "grayscale", "input": "harbour.png"},
        {"operation": "metadata", "input": "harbour.png"},
    ):
        assert _wait_job(dir_fleet, key, spec)["status"] == "succeeded"
    with dir_fleet.client(key) as client:
        usage = client.get("/v1/usage").json()
        pools = client.get("/v1/pools").json()["pools"]
    assert usage["balance_micros"] == CREDIT - usage["charged_micros"]  # all captured, none held

    async def flow() -> None:
        watched = await _signed_in(browser, dir_fleet, key)
        page = watched.page
        await watched.goto_view("#/usage", "usage")
        for card, name in (("balance", "balance_micros"), ("held", "held_micros")):
            assert int(await page.Jeval(f"#usage-{card}", "n => n.dataset.micros")) == usage[name]
            assert await watched.text(f"#usage-{card}") == money(usage[name])
        rows = await watched.js(
            "[...document.querySelectorAll('#usage-charges tbody tr')]"
            ".map(r => [...r.children].map(c => c.textContent))"
        )
        assert rows == [
            [op, str(c["jobs"]), js_number(c["megapixels"]), money(c["amount_micros"])]
            for op, c in sorted(usage["charges"].items())
        ]
        assert [r[0] for r in rows] == ["grayscale", "metadata", "resize"]
        # Today's bar holds one rectangle per operation charged (the chart's series).
        titles = await watched.js(
            "[...document.querySelectorAll('svg.chart rect title')].map(t => t.textContent)"
        )
        assert sorted(t.split()[1].rstrip(":") for t in titles) == [
            "grayscale",
            "metadata",
            "resize",
        ]
        shown_pools = await watched.js(
            "[...document.querySelectorAll('#usage-pools tbody tr')].map(r => r.dataset.pool)"
        )
        assert shown_pools == [p["name"] for p in pools] and "cpu" in shown_pools
        await _screenshot(browser, watched, "usage")
        await _clean(watched, key)

    browser.run(flow())


def test_the_jobs_list_is_live_and_tenants_see_only_their_own(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key_a = new_tenant(dir_fleet, "console-a-", CREDIT)
    key_b = new_tenant(dir_fleet, "console-b-", CREDIT)
    for key in (key_a, key_b):
        _upload(dir_fleet, key, "harbour.png", photo)
    job_b = _wait_job(dir_fleet, key_b, {"operation": "grayscale", "input": "harbour.png"})

    async def flow() -> None:
        watched_a = await _signed_in(browser, dir_fleet, key_a)
        watched_b = await _signed_in(browser, dir_fleet, key_b, incognito=True)
        # A's list, open, picks up jobs submitted elsewhere and follows them to their end.
        ids = []
        with dir_fleet.client(key_a) as client:
            for width in (64, 96, 128):
                spec = {"operation": "resize", "input": "harbour.png", "width": width}
                ids.append(client.post("/v1/jobs", json=spec).json()["id"])
        for job_id in ids:
            await watched_a.wait(
                f"(document.querySelector(\"#jobs-body tr[data-job='{job_id}'] .status\") || {{}})"
                ".dataset?.status === 'succeeded'"
            )
        listed = await watched_a.js(
            "[...document.querySelectorAll('#jobs-body tr')].map(r => r.dataset.job)"
        )
        assert listed == ids[::-1]  # newest first, and nothing of B's
        await _screenshot(browser, watched_a, "jobs")

        # B, signed in in another (incognito) tab: its own job only, and none of A's.
        listed_b = await watched_b.js(
            "[...document.querySelectorAll('#jobs-body tr')].map(r => r.dataset.job)"
        )
        assert listed_b == [job_b["id"]]
        # A's job's page, opened by B, is the API's 404.
        await watched_b.goto_view(f"#/jobs/{ids[0]}", "jobs")
        assert ids[0] in await watched_b.text("#job-missing")
        assert await watched_b.js("document.getElementById('job') === null")
        # The filter: A has no failed job.
        await watched_a.goto_view("#/jobs?status=failed", "jobs")
        assert await watched_a.js("document.querySelectorAll('#jobs-body tr').length") == 0
        assert await watched_a.js("document.getElementById('status-filter').value") == ("failed")
        # The 404 that B's job page met is a logged network error; nothing else went wrong.
        missing = [p for p in watched_b.problems if "404" in p]
        assert len(missing) == 1, watched_b.problems
        watched_b.problems.remove(missing[0])
        await _clean(watched_a, key_a)
        await _clean(watched_b, key_b)

    browser.run(flow())


def test_a_job_page_follows_its_job_to_the_end_on_the_event_stream(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-live-", CREDIT)
    big = images.encode(images.photo_like(3000, 2000, seed=5), "PNG")
    client = dir_fleet.client(key)
    client.put("/v1/objects/big.png", content=big).raise_for_status()
    client.put("/v1/objects/harbour.png", content=photo.read_bytes()).raise_for_status()
    busy: list[str] = []

    def queue_behind_work() -> str:
        """A small job queued behind heavy ones (the cpu pool runs two at a time)."""
        for _ in range(4):
            spec = {"operation": "blur", "input": "big.png", "sigma": 40}
            busy.append(client.post("/v1/jobs", json=spec).json()["id"])
        spec = {"operation": "resize", "input": "harbour.png", "width": 64}
        return str(client.post("/v1/jobs", json=spec).json()["id"])

    async def flow() -> None:
        watched = await _signed_in(browser, dir_fleet, key)
        status = "succeeded"
        for _ in range(3):  # until the page opens before its job ends (the first time, surely)
            job_id = queue_behind_work()
            await watched.goto_view(f"#/jobs/{job_id}", "jobs")
            status = await watched.js("document.querySelector('#job .status').dataset.status")
            if status not in TERMINAL:
                break
        assert status in ("queued", "running")
        await watched.wait(
            "document.querySelector('#job .status').dataset.status === 'succeeded'"
            " && (document.getElementById('job-output') || {}).naturalWidth === 64",
            timeout=180,
        )
        # The page followed the job's stream (and read the job again once it ended),
        # without being reloaded.
        urls = [url for _, url, _ in watched.requests]
        assert sum(u.endswith(f"/v1/jobs/{job_id}/events") for u in urls) == 1
        assert sum(u.endswith(f"/v1/jobs/{job_id}") for u in urls) == 2
        assert sum(u.endswith("/console") for u in urls) == 1
        await _clean(watched, key)

    try:
        browser.run(flow())
    finally:  # the next tests find the pool idle
        ended = wait_all_ended(client, busy, timeout=300)
        client.close()
    assert len(ended) == len(busy)


def test_the_event_stream_parser_reads_the_gateways_stream_however_it_is_cut(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    """The parser that stands in for EventSource, run in the page on a stream the gateway
    sent, cut at every place, and on CRLF line ends split between two chunks."""
    key = new_tenant(dir_fleet, "console-sse-", CREDIT)
    _upload(dir_fleet, key, "harbour.png", photo)
    job = _wait_job(dir_fleet, key, {"operation": "grayscale", "input": "harbour.png"})
    with dir_fleet.client(key) as client:
        stream = client.get(f"/v1/jobs/{job['id']}/events").text
    stream = ": keep-alive\n\n" + stream + "data: one\ndata: two\n\n"

    async def flow() -> None:
        watched = await _open(browser, dir_fleet)
        results = await watched.page.evaluate(
            """async (text) => {
              const {sseParser} = await import('/console/sse.js');
              const parse = (chunks) => {
                const events = [];
                const parser = sseParser((e) => events.push(e));
                chunks.forEach((c) => parser.push(c));
                return JSON.stringify(events);
              };
              const whole = parse([text]);
              const everyCut = (t) => {
                for (let i = 1; i < t.length; i++) {
                  if (parse([t.slice(0, i), t.slice(i)]) !== whole) return false;
                }
                return true;
              };
              const crlf = text.replaceAll('\\n', '\\r\\n');
              return {whole, same: everyCut(text) && everyCut(crlf)};
            }""",
            stream,
        )
        events = json.loads(results["whole"])
        assert results["same"] is True
        assert [e["type"] for e in events] == ["succeeded", "message"]
        assert json.loads(events[0]["data"]) == job
        assert events[1]["data"] == "one\ntwo"
        # The policy is live in this page, and its violations are seen: an inline script
        # (which the console never uses) is refused and reported.
        ran = await watched.page.evaluate(
            """() => { const s = document.createElement('script');
              s.textContent = 'window.inlineRan = true'; document.body.append(s);
              return window.inlineRan === true; }"""
        )
        assert ran is False
        violations = await watched.wait("window.__violations.length && window.__violations")
        assert violations[0].startswith("script-src")
        refused = [p for p in watched.problems if "Content Security Policy" in p]
        assert refused and len(refused) == len(watched.problems), watched.problems

    browser.run(flow())
