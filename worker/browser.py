"""One sandboxed headless Chromium per render worker process, with a reused page.

Sandbox: JavaScript is off, and every request whose scheme is not `data:` is failed by the
DevTools Fetch domain (pyppeteer's request interception does not work with this Chromium).
As defence in depth, all traffic is sent to a dead proxy (loopback included), every host
name resolves to "not found" without a lookup, and site isolation is off so iframes stay in
the intercepted page. A crashed browser is relaunched and the render retried once; a page
slower than the render timeout fails TIMEOUT at once (its retry would be as slow) and the
browser is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from typing import Any

from pyppeteer import launch
from pyppeteer.browser import Browser
from pyppeteer.errors import PyppeteerError
from pyppeteer.page import Page

from jobs.errors import ErrorCode, FleetError

log = logging.getLogger("imagefleet.render")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--disable-features=IsolateOrigins,site-per-process", "--disable-site-isolation-trials",
    # No name reaches a resolver: not the page's (prefetch, preconnect), not Chromium's own
    # background requests (it looks up Google update and account hosts otherwise).
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# Failures that mean the browser or its page is gone: relaunch and retry.
_BROWSER_ERRORS = (PyppeteerError, ConnectionError, OSError, asyncio.TimeoutError)


class Renderer:
    def __init__(self, chromium: str, timeout: float, extra_flags: tuple[str, ...] = ()) -> None:
        self.chromium = chromium
        self.timeout = timeout
        self.flags = [*FLAGS, *extra_flags]  # extra: diagnostics such as --log-net-log
        self.loop = asyncio.new_event_loop()
        self.browser: Browser | None = None
        self.page: Page | None = None
        self.profile: str | None = None
        self.launches = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def _launch(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="imagefleet-chromium-")
        started = time.monotonic()
        self.browser = await launch(
            executablePath=self.chromium, args=self.flags, userDataDir=self.profile, headless=True,
            handleSIGINT=False, handleSIGTERM=False, handleSIGHUP=False, logLevel=logging.WARNING)
        self.page = await self._sandboxed_page(self.browser)
        self.launches += 1
        log.info("chromium %s launched in %.0f ms", self.pid, (time.monotonic() - started) * 1000)

    @staticmethod
    async def _sandboxed_page(browser: Browser) -> Page:
        page = await browser.newPage()
        await page.setJavaScriptEnabled(False)
        session = await page.target.createCDPSession()
        await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

        def paused(event: dict[str, Any]) -> None:
            request_id = event["requestId"]
            if event["request"]["url"].startswith("data:"):
                asyncio.ensure_future(session.send("Fetch.continueRequest",
                                                   {"requestId": request_id}))
            else:
                asyncio.ensure_future(session.send("Fetch.failRequest", {
                    "requestId": request_id, "errorReason": "BlockedByClient"}))

        session.on("Fetch.requestPaused", paused)
        return page

    @property
    def pid(self) -> int | None:
        process = getattr(self.browser, "process", None)
        return process.pid if process else None

    def _browser_alive(self) -> bool:
        process = getattr(self.browser, "process", None)
        return process is not None and process.poll() is None

    async def _close(self) -> None:
        browser, self.browser, self.page = self.browser, None, None
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), 5)
            except Exception:  # already dead or hung: kill it below
                pass
            process = getattr(browser, "process", None)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def close(self) -> None:
        self.loop.run_until_complete(self._close())

    # --- rendering ---------------------------------------------------------------------
    async def _screenshot(self, html: str, width: int, height: int,
                          options: dict[str, Any]) -> bytes:
        if self.page is None or self.browser is None or self.page.isClosed():
            await self._close()
            await self._launch()
        assert self.page is not None
        await self.page.setViewport({"width": width, "height": height})
        await self.page.setContent(html)
        return await self.page.screenshot({"type": "png", **options})

    async def _render(self, html: str, width: int, height: int,
                      options: dict[str, Any]) -> bytes:
        def attempt() -> Any:
            return asyncio.wait_for(self._screenshot(html, width, height, options),
                                    self.timeout)

        try:
            return await attempt()
        except TimeoutError:
            if self._browser_alive():
                # The page itself is too costly (a pathological DOM or CSS): a retry would
                # take as long. The browser may be stuck in it: replace it for the next job.
                log.warning("render took over %.0f s; relaunching the browser", self.timeout)
                await self._close()
                raise FleetError(ErrorCode.TIMEOUT, f"the page took longer than"
                                 f" {self.timeout:g} s to render (FLEET_RENDER_TIMEOUT)"
                                 ) from None
            log.warning("chromium died during a render; relaunching and retrying once")
        except _BROWSER_ERRORS as exc:
            log.warning("chromium failed (%s: %s); relaunching and retrying once",
                        type(exc).__name__, exc)
        await self._close()
        return await attempt()

    def render(self, html: str, width: int, height: int, options: dict[str, Any]) -> bytes:
        """PNG bytes of `html` rendered in a `width x height` viewport."""
        return self.loop.run_until_complete(self._render(html, width, height, options))
