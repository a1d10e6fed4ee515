"""One sandboxed headless Chromium per render worker process, with a reused page.

Sandbox: JavaScript is off, and every request whose scheme is not `data:` is failed by the
DevTools Fetch domain (pyppeteer's request interception does not work with this Chromium).
As defence in depth, all traffic is sent to a dead proxy (loopback included), every host
name resolves to "not found" without a lookup, and site isolation is off so iframes stay in
the intercepted page. DevTools itself listens on no port: Chromium is driven over
`--remote-debugging-pipe` (its fds 3 and 4), which only this process holds. A crashed
browser is relaunched and the render retried once; a page slower than the render timeout
fails TIMEOUT at once (its retry would be as slow) and the browser is replaced. A full page
larger than the render limits fails IMAGE_TOO_LARGE before anything is captured.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from typing import Any

from pyppeteer.browser import Browser
from pyppeteer.connection import Connection
from pyppeteer.errors import PyppeteerError
from pyppeteer.launcher import defaultArgs
from pyppeteer.page import Page
from websockets.exceptions import ConnectionClosed

from jobs.errors import ErrorCode, FleetError

log = logging.getLogger("imagefleet.render")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--disable-features=IsolateOrigins,site-per-process",
    "--disable-site-isolation-trials",
    # No name reaches a resolver: not the page's (prefetch, preconnect), not Chromium's own
    # background requests (it looks up Google update and account hosts otherwise).
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# Failures that mean the browser or its page is gone: relaunch and retry.
_BROWSER_ERRORS = (PyppeteerError, ConnectionError, OSError, asyncio.TimeoutError)


# --- Chromium on a DevTools pipe -------------------------------------------------------
class _Process:
    """Chromium's main process, started by `posix_spawn` (subprocess cannot put a pipe on a
    chosen fd number); reaped once, so a recycled pid is never signalled."""

    def __init__(self, argv: list[str]) -> None:
        # pipe() returns the lowest free fds: `commands_r` is the lowest of the four and
        # `replies_w` the highest (>= 6), so the first dup2 cannot overwrite the second.
        commands_r, self.commands = os.pipe()
        self.replies, replies_w = os.pipe()
        try:
            self.pid = os.posix_spawn(
                argv[0],
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, commands_r, 3),  # Chromium reads commands on fd 3
                    (os.POSIX_SPAWN_DUP2, replies_w, 4),  # and writes replies to fd 4
                ],
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            os.close(self.commands)
            os.close(self.replies)
            raise
        finally:
            os.close(commands_r)
            os.close(replies_w)
        self.exited = False

    def alive(self) -> bool:
        if not self.exited:
            try:
                self.exited = os.waitpid(self.pid, os.WNOHANG)[0] != 0
            except ChildProcessError:  # reaped elsewhere
                self.exited = True
        return not self.exited

    async def stop(self, grace: float) -> None:
        """Wait up to `grace` seconds for the process to exit, then SIGKILL it."""
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.exited = True


class _Pipe:
    """The DevTools pipe with the websocket methods pyppeteer's Connection calls: messages
    are JSON texts, each ended by a NUL byte."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        incoming: asyncio.BaseTransport,
        outgoing: asyncio.WriteTransport,
    ) -> None:
        self.reader, self.incoming, self.outgoing = reader, incoming, outgoing

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, read_fd: int, write_fd: int) -> _Pipe:
        reader = asyncio.StreamReader(limit=2**40)  # a screenshot reply is one message
        incoming, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
        )
        outgoing, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(write_fd, "wb", 0))
        return cls(reader, incoming, outgoing)

    async def recv(self) -> str:
        try:
            return (await self.reader.readuntil(b"\0"))[:-1].decode()
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("chromium closed its DevTools pipe") from None

    async def send(self, message: str) -> None:
        if self.outgoing.is_closing():
            raise ConnectionClosed(None, None)  # what Connection expects
        self.outgoing.write(message.encode() + b"\0")

    async def close(self) -> None:
        self.outgoing.close()
        self.incoming.close()


class PipeConnection(Connection):
    """pyppeteer's Connection reading and writing the pipe instead of a websocket."""

    def __init__(self, pipe: _Pipe, loop: asyncio.AbstractEventLoop) -> None:
        self.pipe = pipe
        super().__init__("ws://devtools-pipe", loop)  # never dialled: see _recv_loop

    async def _recv_loop(self) -> None:
        self.connection = self.pipe  # what _async_send and _on_close talk to
        self._connected = True
        while self._connected:
            try:
                message = await self.pipe.recv()
            except ConnectionResetError:
                break
            try:
                await self._on_message(message)
            except asyncio.InvalidStateError:  # a reply to a request a timeout cancelled
                pass
        if self._connected:
            self._loop.create_task(self.dispose())

    async def dispose(self) -> None:
        # pyppeteer fails every pending request, and trips over one a timeout already
        # cancelled: drop those first, and close the pipe whatever happens.
        for table in [self._callbacks, *(s._callbacks for s in self._sessions.values())]:
            for key in [key for key, future in table.items() if future.done()]:
                del table[key]
        try:
            await super().dispose()
        finally:
            await self.pipe.close()


class Renderer:
    def __init__(
        self,
        chromium: str,
        timeout: float,
        extra_flags: tuple[str, ...] = (),
        max_side: int = 16384,
        max_megapixels: float = 100.0,
    ) -> None:
        self.chromium = chromium
        self.timeout = timeout
        self.max_side, self.max_megapixels = max_side, max_megapixels
        self.flags = [*FLAGS, *extra_flags]  # extra: diagnostics such as --log-net-log
        self.loop = asyncio.new_event_loop()
        self.process: _Process | None = None
        self.connection: PipeConnection | None = None
        self.browser: Browser | None = None
        self.page: Page | None = None
        self.profile: str | None = None
        self.launches = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def _launch(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="imagefleet-chromium-")
        started = time.monotonic()
        self.process = _Process(
            [
                self.chromium,
                "--remote-debugging-pipe",
                *defaultArgs(args=self.flags, userDataDir=self.profile, headless=True),
            ]
        )
        pipe = await _Pipe.open(self.loop, self.process.replies, self.process.commands)
        self.connection = PipeConnection(pipe, self.loop)
        self.browser = await Browser.create(self.connection, [], False, None)
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
                asyncio.ensure_future(
                    session.send("Fetch.continueRequest", {"requestId": request_id})
                )
            else:
                asyncio.ensure_future(
                    session.send(
                        "Fetch.failRequest",
                        {"requestId": request_id, "errorReason": "BlockedByClient"},
                    )
                )

        session.on("Fetch.requestPaused", paused)
        return page

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _browser_alive(self) -> bool:
        return self.process is not None and self.process.alive()

    async def _close(self) -> None:
        connection, process = self.connection, self.process
        self.connection, self.process, self.browser, self.page = None, None, None, None
        if connection is not None:
            try:  # ask for a clean exit; a dead or hung browser is killed below
                await asyncio.wait_for(connection.send("Browser.close"), 2)
            except Exception:
                pass
            try:
                await connection.dispose()
            except Exception:
                pass
        if process is not None:
            await process.stop(grace=2)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def close(self) -> None:
        self.loop.run_until_complete(self._close())

    # --- rendering ---------------------------------------------------------------------
    def _check_size(self, width: int, height: int) -> None:
        if max(width, height) > self.max_side or width * height > self.max_megapixels * 1e6:
            raise FleetError(
                ErrorCode.IMAGE_TOO_LARGE,
                (
                    f"the full page is {width}x{height} px; the limits are {self.max_side} px a"
                    f" side (FLEET_RENDER_MAX_SIDE) and {self.max_megapixels:g} megapixels"
                    f" (FLEET_MAX_MEGAPIXELS)"
                ),
            )

    async def _screenshot(
        self, html: str, width: int, height: int, options: dict[str, Any]
    ) -> bytes:
        if self.page is None or self.browser is None or self.page.isClosed():
            await self._close()
            await self._launch()
        assert self.page is not None
        await self.page.setViewport({"width": width, "height": height})
        await self.page.setContent(html)
        if options.get("fullPage"):  # measured as pyppeteer measures it for the capture
            size = (await self.page._client.send("Page.getLayoutMetrics"))["contentSize"]
            self._check_size(math.ceil(size["width"]), math.ceil(size["height"]))
        return await self.page.screenshot({"type": "png", **options})

    async def _render(self, html: str, width: int, height: int, options: dict[str, Any]) -> bytes:
        def attempt() -> Any:
            return asyncio.wait_for(self._screenshot(html, width, height, options), self.timeout)

        try:
            return await attempt()
        except TimeoutError:
            if self._browser_alive():
                # The page itself is too costly (a pathological DOM or CSS): a retry would
                # take as long. The browser may be stuck in it: replace it for the next job.
                log.warning("render took over %.0f s; relaunching the browser", self.timeout)
                await self._close()
                raise FleetError(
                    ErrorCode.TIMEOUT,
                    f"the page took longer than"
                    f" {self.timeout:g} s to render (FLEET_RENDER_TIMEOUT)",
                ) from None
            log.warning("chromium died during a render; relaunching and retrying once")
        except _BROWSER_ERRORS as exc:
            log.warning(
                "chromium failed (%s: %s); relaunching and retrying once", type(exc).__name__, exc
            )
        await self._close()
        return await attempt()

    def render(self, html: str, width: int, height: int, options: dict[str, Any]) -> bytes:
        """PNG bytes of `html` rendered in a `width x height` viewport."""
        return self.loop.run_until_complete(self._render(html, width, height, options))
