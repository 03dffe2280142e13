"""A webhook receiver for tests: an http.server on 127.0.0.1 in a thread that verifies each signature like a user's
receiver would, records what it got, and can answer with chosen statuses or be taken down and brought back."""

import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict
    body: bytes
    signature_valid: bool
    timestamp: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


def signature_valid(header: str, body: bytes, secret: str) -> tuple[bool, int]:
    """Stripe's receiver-side check: recompute HMAC-SHA256 over "<t>.<body>" and compare in constant time."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = fields.get("t", "")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", "")), int(timestamp or 0)


class Receiver:
    """Start with `start()`; `url` is where it listens; `secret` must be set to verify signatures."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()  # answered in turn; 200 once empty
        self.secret = ""
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tutum?source=test"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                valid, timestamp = signature_valid(self.headers.get("X-Tutum-Signature", ""), body, receiver.secret)
                receiver.received.append(Received(self.path, dict(self.headers), body, valid, timestamp))
                status = receiver.statuses.popleft() if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until `start()` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
