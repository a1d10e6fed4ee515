"""What the console's browser tests share (tests/test_console.py, test_console_pages.py):
the browser and photo fixtures, signing in, and the checks every page ends with.

`CONSOLE_SCREENSHOTS=docs/console .venv/bin/pytest tests/test_console_pages.py` also saves a
screenshot of each page there (docs/console.md shows them); a plain run writes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import console_api
from tests import images
from tests.browser import Browser, Watched
from tests.fleet_harness import ROOT, Fleet

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


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module", name="photo")
def photo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "harbour.png"
    path.write_bytes(images.encode(images.photo_like(WIDTH, HEIGHT, seed=3), "PNG"))
    return path


async def screenshot(browser: Browser, watched: Watched, name: str) -> None:
    if SHOTS:
        await watched.js("window.scrollTo(0, 0)")
        await browser.screenshot(watched, ROOT / SHOTS / f"{name}.png")


async def open_console(browser: Browser, fleet: Fleet, incognito: bool = False) -> Watched:
    watched = await browser.page(incognito)
    response = await watched.page.goto(f"{fleet.base_url}/console", {"waitUntil": "load"})
    assert response.status == 200
    assert response.headers["content-security-policy"] == console_api.CSP
    await watched.wait("!document.getElementById('sign-in').hidden")
    return watched


async def sign_in(watched: Watched, key: str) -> None:
    page = watched.page
    await page.type("#api-key", key)
    await page.click("#sign-in-form button[type=submit]")
    await watched.wait("document.getElementById('view').dataset.ready === 'jobs'")


async def signed_in(browser: Browser, fleet: Fleet, key: str, incognito: bool = False) -> Watched:
    watched = await open_console(browser, fleet, incognito)
    await sign_in(watched, key)
    return watched


async def clean(watched: Watched, *keys: str) -> None:
    """Nothing went wrong on the page, and no key went anywhere but an Authorization header."""
    assert watched.problems == []
    assert await watched.violations() == []
    assert watched.requests, "the page made no request at all"
    for _, url, auth in watched.requests:
        assert not any(key in url for key in keys), url
        if "/v1/" in url:
            assert auth is not None and auth.startswith("Bearer ") and auth[7:] in keys, url
    assert not any(key in watched.page.url for key in keys)


def wait_job(fleet: Fleet, key: str, spec: dict) -> dict:
    with fleet.client(key) as client:
        job = client.post("/v1/jobs?wait=30", json=spec)
        assert job.status_code == 200, job.text  # ended within the wait
        return job.json()


def upload(fleet: Fleet, key: str, name: str, photo: Path) -> None:
    with fleet.client(key) as client:
        client.put(f"/v1/objects/{name}", content=photo.read_bytes()).raise_for_status()
