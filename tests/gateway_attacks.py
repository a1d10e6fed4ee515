"""A hostile client of the gateway before it authenticates anyone: raw HTTP/1.1 over loopback
sockets (huge bodies with a bad key, huge headers, dripped headers and bodies), and the
gateway process's memory meanwhile from /proc. Used by tests/test_hostile_gateway.py and
tests/hostile_report.py."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.hostile_measure import memory_kb, restart_peak

CHUNK = 64 * 1024
BATCH_BODY = 13_700_000  # just under POST /v1/batches' limit with the default settings
BIG_HEADER = 20_000_000


@dataclass
class Answer:
    """What the gateway sent back: None if it closed (or reset) the connection unanswered."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def request_head(method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send(writer: asyncio.StreamWriter, head: bytes, filler: int, tail: bytes) -> None:
    """`head`, `filler` bytes of `x`, `tail`, as fast as the gateway takes them; a gateway
    that closes the connection meanwhile ends the sending quietly."""
    with contextlib.suppress(ConnectionError):
        writer.write(head)
        block = b"x" * CHUNK
        while filler > 0:
            writer.write(block[: min(filler, CHUNK)])
            filler -= CHUNK
            await writer.drain()
        writer.write(tail)
        await writer.drain()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return Answer(None)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = b""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


async def exchange(
    port: int, head: bytes, filler: int = 0, tail: bytes = b"", timeout: float = 60
) -> Answer:
    """Send a request (its body or its headers `filler` bytes long) while reading the answer,
    as a client that streams its request does."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sending = asyncio.create_task(_send(writer, head, filler, tail))
    try:
        return await asyncio.wait_for(read_answer(reader), timeout)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()


async def many(port: int, count: int, head: bytes, filler: int, tail: bytes = b"") -> list[Answer]:
    return list(await asyncio.gather(*(exchange(port, head, filler, tail) for _ in range(count))))


async def drip(
    port: int, dripped: bytes, every: float, give_up: float, first: bytes = b""
) -> tuple[float, bytes]:
    """Send `first` at once, then `dripped` a byte every `every` seconds until the gateway
    answers or closes the connection: how long that took, and what it sent (b"": closed
    unanswered). TimeoutError if the connection is still open after `give_up` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    began = time.monotonic()
    try:
        for byte in dripped:
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                got = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                if time.monotonic() - began > give_up:
                    raise
                continue
            except ConnectionError:
                got = b""
            return time.monotonic() - began, got
        raise TimeoutError("the gateway neither answered nor closed before the last byte")
    finally:
        writer.close()


class Peak:
    """Peak RSS of one process during a `with` block: VmHWM restarted on entry (clear_refs),
    VmRSS also sampled every 50 ms in case that is refused. `grown` is the peak over the RSS
    at entry, in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start, self.sampled, self.hwm = pid, 0, 0, 0
        self.cleared = True
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        fields = memory_kb(self.pid)
        self.sampled = max(self.sampled, fields["VmRSS"] * 1024)
        self.hwm = max(self.hwm, fields["VmHWM"] * 1024)

    def _run(self) -> None:
        while not self.stopping.wait(0.05):
            self._sample()

    def __enter__(self) -> Peak:
        try:
            restart_peak(self.pid)
        except OSError:
            self.cleared = False
        self.start = memory_kb(self.pid)["VmRSS"] * 1024
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        self._sample()

    @property
    def grown(self) -> int:
        return (self.hwm if self.cleared else self.sampled) - self.start


@contextmanager
def peak_of(pid: int) -> Iterator[Peak]:
    with Peak(pid) as peak:
        yield peak
