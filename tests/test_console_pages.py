"""The web console's pages in real headless Chromium, against a real fleet: the try page's
form, generated from the operation's schema, runs a resize whose output the page shows at
the size asked, at the cost the API charged; the job is in the live list and on its own
page with its spec and images, followed to its end on the event stream; the usage page
shows the API's balance and charges; and another tenant sees none of it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests import images
from tests.browser import Browser
from tests.console_pages import (  # noqa: F401 (fixtures)
    CREDIT,
    HEIGHT,
    WIDTH,
    browser_fixture,
    clean,
    js_number,
    money,
    photo_fixture,
    screenshot,
    signed_in,
    upload,
    wait_job,
)
from tests.fleet_harness import Fleet
from tests.fleet_helpers import TERMINAL, wait_all_ended
from tests.hostile_inputs import new_tenant


def test_a_resize_from_the_generated_form_shows_its_output_cost_job_and_images(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-try-", CREDIT)
    with dir_fleet.client(key) as client:
        ops = {op["name"]: op for op in client.get("/v1/operations").json()["operations"]}
    per_mp = ops["resize"]["price"]["per_mp_micros"]
    expected_micros = math.ceil(per_mp * max(1.0, WIDTH * HEIGHT / 1e6))

    async def flow() -> str:
        watched = await signed_in(browser, dir_fleet, key)
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
        await screenshot(browser, watched, "try")

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
        await screenshot(browser, watched, "job")
        await clean(watched, key)
        return job_id

    browser.run(flow())


def test_the_usage_page_shows_the_api_balance_charges_and_queues(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-usage-", CREDIT)
    upload(dir_fleet, key, "harbour.png", photo)
    for spec in (
        {"operation": "resize", "input": "harbour.png", "width": 200},
        {"operation": "resize", "input": "harbour.png", "width": 100},
        {"operation": "grayscale", "input": "harbour.png"},
        {"operation": "metadata", "input": "harbour.png"},
    ):
        assert wait_job(dir_fleet, key, spec)["status"] == "succeeded"
    with dir_fleet.client(key) as client:
        usage = client.get("/v1/usage").json()
        pools = client.get("/v1/pools").json()["pools"]
    assert usage["balance_micros"] == CREDIT - usage["charged_micros"]  # all captured, none held

    async def flow() -> None:
        watched = await signed_in(browser, dir_fleet, key)
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
        await screenshot(browser, watched, "usage")
        await clean(watched, key)

    browser.run(flow())


def test_the_jobs_list_is_live_and_tenants_see_only_their_own(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key_a = new_tenant(dir_fleet, "console-a-", CREDIT)
    key_b = new_tenant(dir_fleet, "console-b-", CREDIT)
    for key in (key_a, key_b):
        upload(dir_fleet, key, "harbour.png", photo)
    job_b = wait_job(dir_fleet, key_b, {"operation": "grayscale", "input": "harbour.png"})

    async def flow() -> None:
        watched_a = await signed_in(browser, dir_fleet, key_a)
        watched_b = await signed_in(browser, dir_fleet, key_b, incognito=True)
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
        await screenshot(browser, watched_a, "jobs")

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
        await clean(watched_a, key_a)
        await clean(watched_b, key_b)

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
        watched = await signed_in(browser, dir_fleet, key)
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
        await clean(watched, key)

    try:
        browser.run(flow())
    finally:  # the next tests find the pool idle
        ended = wait_all_ended(client, busy, timeout=300)
        client.close()
    assert len(ended) == len(busy)


def test_the_try_page_checks_the_spec_before_uploading_and_clears_its_pending_state(
    dir_fleet: Fleet, browser: Browser, photo: Path
) -> None:
    key = new_tenant(dir_fleet, "console-refused-", 0)  # no credit: every job is refused 402
    tenant_objects = dir_fleet.var_dir / "objects" / "tenants"

    def uploads() -> list[Path]:
        return [p for p in tenant_objects.rglob("console/*") if p.is_file()]

    before = set(uploads())

    async def flow() -> None:
        watched = await signed_in(browser, dir_fleet, key)
        page = watched.page
        await watched.goto_view("#/try", "try")
        await page.select("#try-op", "resize")
        await (await page.J("#try-file")).uploadFile(str(photo))
        # A spec only the gateway refuses (resize needs a width or a height): the image
        # is never uploaded, and the page says why, with nothing pending.
        await page.click("#try-run")
        await watched.wait("document.getElementById('try-error').textContent !== ''")
        assert (await watched.text("#try-error")).startswith("VALIDATION_ERROR: ")
        assert await watched.text("#try-output") == ""
        sent = [(method, url.split("/v1/", 1)[-1]) for method, url, _ in watched.requests]
        assert ("POST", "jobs/validate") in sent
        assert not any(method == "PUT" for method, _ in sent), sent
        assert set(uploads()) == before
        # A valid spec the fleet refuses at submission (402: no credit): uploaded, refused,
        # and the page is not left "Running…".
        await page.type("#f-width", "40")
        await watched.js("document.getElementById('try-error').textContent = ''")
        await page.click("#try-run")
        await watched.wait("document.getElementById('try-error').textContent !== ''")
        assert (await watched.text("#try-error")).startswith("PAYMENT_REQUIRED: ")
        assert await watched.text("#try-output") == ""
        assert len(set(uploads()) - before) == 1
        # The two refusals are logged network errors (400, 402); nothing else went wrong.
        refused = [p for p in watched.problems if " 400 " in p or " 402 " in p]
        assert len(refused) == 2, watched.problems
        for problem in refused:
            watched.problems.remove(problem)
        await clean(watched, key)

    browser.run(flow())
