"""Hostile webhook receivers on loopback: one that answers a byte every few seconds (each
read well inside any socket timeout, the whole answer minutes long) and one that never
answers. Every connection's open and close times are logged, shared between receivers,
so a test can count how many of one tenant's attempts were under way at once."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

# 38 bytes: at one byte every 5 s the whole answer takes over three minutes.
ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Connections:
    """(opened, closed) monotonic times of every connection the receivers took."""

    spans: list[list[float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> list[float]:
        span = [time.monotonic(), float("inf")]
        with self.lock:
            self.spans.append(span)
        return span

    def closed(self) -> list[tuple[float, float]]:
        with self.lock:
            return [(a, b) for a, b in self.spans if b != float("inf")]

    def most_at_once(self, slack: float) -> int:
        """The most connections open at one moment, each span cut by `slack` seconds at its
        end (a receiver notices a close a little after the sender made it)."""
        with self.lock:
            spans = [(a, min(b, time.monotonic()) - slack) for a, b in self.spans]
        edges = sorted([(a, 1) for a, b in spans if b > a] + [(b, -1) for a, b in spans if b > a])
        most = now = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most


class SlowReceiver:
    """Reads each request (over TLS with `tls`), then sends `answer` a byte every `drip`
    seconds (None: never a byte), until the sender closes the connection."""

    def __init__(
        self,
        connections: Connections,
        drip: float | None,
        answer: bytes = ANSWER,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connections, self.drip, self.answer, self.tls = connections, drip, answer, tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        span = self.connections.open()
        try:
            if self.tls is not None:  # a quick handshake: the drip comes after it
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.recv(65536)  # the request (small: a job's JSON)
            for byte in self.answer if self.drip else iter(int, 1):  # silent: wait forever
                readable, _, _ = select.select([conn], [], [], self.drip or 1.0)
                if self.stopped or (readable and not conn.recv(65536)):
                    return  # the sender hung up, or this receiver stops
                if self.drip:
                    conn.sendall(bytes([byte]))
        except OSError:
            return
        finally:
            span[1] = time.monotonic()
            conn.close()

    def stop(self) -> None:
        """Stop accepting; open connections close within a drip (or a second)."""
        self.stopped = True
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.server.close()
