"""Headless Chromium for the console's tests (tests/test_console.py), driven by pyppeteer
from synchronous tests: the browser lives on an event loop of its own, and each step runs
to completion on it (`Browser.run`).

Each page records what would mean the console is broken or leaking: console errors, uncaught
exceptions, Content-Security-Policy violations (a listener added before any page script),
failed requests, and every request's URL and Authorization header. Waits poll
`page.evaluate` (pyppeteer's waitForFunction builds its predicate with `new Function`, which
the console's CSP rightly refuses)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyppeteer
from pyppeteer.page import Page

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1200, "height": 800}
T = TypeVar("T")

# Runs in every document before its own scripts (DevTools injects it; the CSP does not apply).
_WATCH_CSP = """() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
}"""


@dataclass
class Watched:
    """A page and what it did."""

    page: Page
    problems: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, URL, auth

    async def violations(self) -> list[str]:
        found = await self.js("window.__violations")
        assert isinstance(found, list), "the policy watcher is not in the page"
        return found

    async def js(self, expression: str) -> Any:
        """The value of a JavaScript expression (never taken for a function to call)."""
        return await self.page.evaluate(expression, force_expr=True)

    async def wait(self, expression: str, timeout: float = 60) -> Any:
        """The first truthy value of a JavaScript expression, polled."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}\nproblems: {self.problems}")
            await asyncio.sleep(0.1)

    async def text(self, selector: str) -> str:
        return str(await self.page.Jeval(selector, "node => node.textContent"))

    async def goto_view(self, hash_: str, ready: str) -> None:
        """Follow a console link (#/...) and wait until that view has drawn. The old view's
        mark goes first: the hashchange that starts the new one comes a task later."""
        await self.js(
            f"delete document.getElementById('view').dataset.ready; location.hash = {hash_!r}"
        )
        await self.wait(f"document.getElementById('view').dataset.ready === {ready!r}")


class Browser:
    """One headless Chromium for a test module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.browser = self.run(
            pyppeteer.launch(
                executablePath=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"],
                handleSIGINT=False,
                handleSIGTERM=False,
                handleSIGHUP=False,
                autoClose=False,
            )
        )

    def run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(step)

    async def page(self, incognito: bool = False) -> Watched:
        """A new tab (in a fresh incognito context: no storage shared with the others)."""
        owner = await self.browser.createIncognitoBrowserContext() if incognito else self.browser
        page = await owner.newPage()
        await page.setViewport(VIEWPORT)
        watched = Watched(page)
        await page.evaluateOnNewDocument(_WATCH_CSP)

        def console(message: Any) -> None:
            if message.type in ("error", "assert"):
                watched.problems.append(f"console {message.type}: {message.text}")

        def failed(request: Any) -> None:
            reason = (request.failure() or {}).get("errorText", "")
            if reason != "net::ERR_ABORTED":  # a stream or fetch the console stopped itself
                watched.problems.append(f"request failed: {request.url} {reason}")

        def sent(request: Any) -> None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            watched.requests.append((request.method, request.url, headers.get("authorization")))

        page.on("console", console)
        page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
        page.on("requestfailed", failed)
        page.on("request", sent)
        return watched

    async def screenshot(self, watched: Watched, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await watched.page.screenshot({"path": str(path)})

    def close(self) -> None:
        try:
            self.run(self.browser.close())
        finally:
            self.loop.close()
