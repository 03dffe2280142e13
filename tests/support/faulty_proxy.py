"""An HTTP proxy in front of the moto server that makes a share of EC2 RunInstances calls fail.

Two failures, both real EC2 behaviours: the request is refused before it reaches EC2 (503, nothing created), or
EC2 creates the instance but the answer is lost (500 after forwarding), the case that makes twins if a client
retries blindly. Seeded, so a failing run can be replayed; listens on 127.0.0.1 only.
"""

from __future__ import annotations

import random
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>'
    "</Error></Errors><RequestID>fault-injection</RequestID></Response>"
)


class FaultyProxy:
    """Forwards everything to `target`; RunInstances fails with probability `failure_rate`."""

    def __init__(self, target: str, *, failure_rate: float, seed: int = 7) -> None:
        self.target = target.rstrip("/")
        self.failure_rate = failure_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.refused = 0
        self.lost = 0
        self.forwarded_creates = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._forward(b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if b"Action=RunInstances" in body:
                    with proxy.lock:
                        draw = proxy.random.random()
                    if draw < proxy.failure_rate / 2:
                        with proxy.lock:
                            proxy.refused += 1
                        return self._error(503, "Unavailable", "injected: refused before reaching EC2")
                    if draw < proxy.failure_rate:
                        self._forward(body, send=False)
                        with proxy.lock:
                            proxy.lost += 1
                            proxy.forwarded_creates += 1
                        return self._error(500, "InternalError", "injected: instance created, answer lost")
                    with proxy.lock:
                        proxy.forwarded_creates += 1
                self._forward(body)

            def _forward(self, body: bytes, send: bool = True):
                headers = {key: value for key, value in self.headers.items() if key.lower() not in {"host"}}
                request = urllib.request.Request(
                    proxy.target + self.path, data=body or None, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload, reply_headers = response.status, response.read(), response.headers.items()
                except urllib.error.HTTPError as error:
                    status, payload, reply_headers = error.code, error.read(), error.headers.items()
                if not send:
                    return
                self.send_response(status)
                for key, value in reply_headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, status: int, code: str, message: str):
                payload = _ERROR.format(code=code, message=message).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
