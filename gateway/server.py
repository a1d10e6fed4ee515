"""The gateway's HTTP connections before the app sees a request: uvicorn's httptools protocol
with the limits it lacks. Headers are cut off at FLEET_MAX_HEADER_BYTES (`431`, answered
before more is buffered) and must arrive within FLEET_HEADER_TIMEOUT_SECONDS (else the
connection is closed: a slowloris client holds nothing for long). A response sent before
its request's body arrived ends the connection: the rest of the body is read and dropped for
a moment (a bounded amount), then the connection is closed, so the client sees the answer
instead of a reset and nothing more of that body is buffered.

httptools rather than h11: uvicorn's h11 bounds headers too, but answers `400` text for it,
has no header timeout either, and served about half the requests a second here (see
docs/deployment.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from imagefleet.settings import settings
from jobs.errors import HTTP_STATUS, ErrorCode

# After an early answer: what of the unread body is read and dropped before the connection
# stops reading, and when it closes. Closing at once with bytes unread resets it, and the
# client may lose the answer; meanwhile a client that sent its body whole reads it.
LINGER_BYTES = 1 << 20
LINGER_SECONDS = 2.0
# A rest of body this small is read and dropped instead (within the header timeout), and the
# connection kept: a client that sends its headers and body apart is often answered between.
DRAIN_BYTES = 64 * 1024


def _headers_too_large(limit: int) -> bytes:
    body = msgspec.json.encode(
        {
            "error": {
                "code": ErrorCode.HEADERS_TOO_LARGE.value,
                "message": f"the request line and headers are over the {limit}-byte limit",
            }
        }
    )
    status = HTTP_STATUS[ErrorCode.HEADERS_TOO_LARGE]
    return (
        f"HTTP/1.1 {status} Request Header Fields Too Large\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GatewayProtocol(HttpToolsProtocol):
    """One connection (`imagefleet gateway` gives uvicorn this class by name)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cfg = settings()
        self.max_header_bytes, self.header_seconds = cfg.max_header_bytes, cfg.header_timeout
        self.in_headers = True  # reading a request line and headers (or awaiting them)
        self.header_bytes = 0  # of the request being read
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_left: int | None = None  # of the declared body still to come (None: chunked)
        self.draining = False  # answered; dropping the small rest of the body
        self.lingering = False
        self.dropped = 0  # body bytes read and dropped since lingering began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that sends nothing is closed in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.dropped += len(data)
            if self.dropped > LINGER_BYTES:  # enough: the client waits until the close
                self.flow.pause_reading()
            return
        # Fed to the parser in parts no longer than what the headers may still take, so the
        # limit holds before more is buffered (httptools keeps a header value whole).
        while data and not self.transport.is_closing():
            if not self.in_headers:
                super().data_received(data)
                return
            room = self.max_header_bytes - self.header_bytes
            if room <= 0:
                self._refuse_headers()
                return
            part, data = data[:room], data[room:]
            self.header_bytes += len(part)
            super().data_received(part)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self._cancel_header_timer()
        length = dict(self.headers).get(b"content-length", b"")
        self.body_left = int(length) if length.isdigit() else None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.body_left is not None:
            self.body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_headers, self.header_bytes = True, 0
        if self.draining:
            self.draining = False
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        if not self.in_headers and not self.transport.is_closing():  # the body is unread
            if self.body_left is not None and self.body_left <= DRAIN_BYTES:
                self.draining = True
                self._arm_header_timer()
            else:
                self.server_state.total_requests += 1
                self._linger()
                return
        super().on_response_complete()

    def _arm_header_timer(self) -> None:
        if self.header_timer is None:  # a drip of new requests does not restart the clock
            self.header_timer = self.loop.call_later(self.header_seconds, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_timed_out(self) -> None:
        self.header_timer = None
        if not (self.in_headers or self.draining) or self.transport.is_closing():
            return
        if self.in_headers and self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a pipelined request waits for the one before it
            return
        self.transport.close()

    def _refuse_headers(self) -> None:
        self._cancel_header_timer()
        self.transport.write(_headers_too_large(self.max_header_bytes))
        self._linger()

    def _linger(self) -> None:
        """Answered: half-close, drop what still comes for a moment, then close."""
        self._unset_keepalive_if_required()
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
