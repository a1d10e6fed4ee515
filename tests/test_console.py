"""The web console (gateway/console/, docs/console.md) in real headless Chromium, against a
real fleet: served under a strict Content-Security-Policy and nothing else, the pools route
it reads, sign-in keeping the key in the tab's sessionStorage and out of every URL, and its
event-stream parser on the gateway's real stream. The pages themselves:
tests/test_console_pages.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import redis

from gateway import console_api
from tests.browser import Browser, Watched
from tests.console_pages import (  # noqa: F401 (fixtures)
    CREDIT,
    WRONG_KEY,
    browser_fixture,
    clean,
    open_console,
    photo_fixture,
    screenshot,
    sign_in,
    upload,
    wait_job,
)
from tests.fleet_harness import ROOT, Fleet
from tests.hostile_inputs import new_tenant


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
    assert [p["name"] for p in pools] == ["cpu", "ocr", "render", "webhooks", "payments"]
    for pool in pools:
        assert pool["operations"] == sorted(o["name"] for o in ops if o["queue"] == pool["name"])
    assert pools[-2]["operations"] == pools[-1]["operations"] == []  # webhooks, settlements
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
        watched = await open_console(browser, dir_fleet)
        page = watched.page
        await screenshot(browser, watched, "sign-in")
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

        await sign_in(watched, key)
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
        await clean(watched, key, WRONG_KEY)
        return watched

    browser.run(flow())


def test_the_event_stream_parser_reads_the_gateways_stream_however_it_is_cut(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    """The parser that stands in for EventSource, run in the page on a stream the gateway
    sent, cut at every place, and on CRLF line ends split between two chunks."""
    key = new_tenant(dir_fleet, "console-sse-", CREDIT)
    upload(dir_fleet, key, "harbour.png", photo)
    job = wait_job(dir_fleet, key, {"operation": "grayscale", "input": "harbour.png"})
    with dir_fleet.client(key) as client:
        stream = client.get(f"/v1/jobs/{job['id']}/events").text
    stream = ": keep-alive\n\n" + stream + "data: one\ndata: two\n\n"

    async def flow() -> None:
        watched = await open_console(browser, dir_fleet)
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
