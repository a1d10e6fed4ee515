"""A loopback webhook receiver that checks signatures independently of the fleet's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import threading
import time
from typing import Any


class Receiver:
    """A loopback HTTP server that records webhook calls; fails the first `failures`."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.calls: list[dict[str, Any]] = []
        self.failures = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append(
                    {
                        "headers": dict(self.headers),
                        "body": body,
                        "valid": receiver.valid(self.headers, body),
                    }
                )
                status = 500 if receiver.failures > 0 else 204
                receiver.failures -= 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/imagefleet"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def valid(self, headers: Any, body: bytes) -> bool:
        """Standard Webhooks verification, written out independently of the fleet's code."""
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split()]
        fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
        return fresh and any(hmac.compare_digest(expected, s) for s in offered)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.calls
