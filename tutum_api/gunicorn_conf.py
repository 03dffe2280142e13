"""gunicorn's settings for every place that serves the REST API: `make run` (runstack), compose, the image, the tests
and the benchmarks all start it with `--config python:tutum_api.gunicorn_conf`.

A request that gunicorn itself refuses (a request line or header over its limits, a malformed request) never reaches
Django, and gunicorn answers it with an HTML page of its own. The API answers every error as `{"error": ...}`, so
the workers write these answers in that shape too.
"""

from __future__ import annotations

import json

from gunicorn import util

#: gunicorn's largest request line (its default is half of it): a long filter query still fits.
limit_request_line = 8190
#: Idle keep-alive connections are closed after 75 s (nginx's default), not gunicorn's 2: a client reusing a pooled
#: connection just as the server closes it gets a reset for a request that was never read.
keepalive = 75

#: What to fix, by the status gunicorn answers with (its own message follows, in parentheses).
_ADVICE = {
    400: "The request is not valid HTTP/1.1",
    414: f"The request line is longer than {limit_request_line} bytes: send a shorter path or fewer query parameters",
    431: "A request header is too large, or there are too many: send fewer or shorter headers",
}


def error_body(status: int, reason: str, message: str) -> bytes:
    """The JSON body for an answer gunicorn gives before the application sees the request."""
    advice = _ADVICE.get(status, reason)
    text = f"{advice} ({message})" if message and status != 500 else advice
    return json.dumps({"error": text}).encode()


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """`gunicorn.util.write_error` with a JSON body: same status line and `Connection: close`."""
    body = error_body(status_int, reason, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker) -> None:
    """gunicorn's hook in each worker once it has loaded the application: its error answers become JSON."""
    util.write_error = write_json_error
