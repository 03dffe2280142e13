"""Requests that gunicorn refuses before Django sees them are answered like every other API error: a JSON
`{"error": ...}` that says what to fix, never gunicorn's HTML page. Checked on `make run`'s own web server."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.support.stack import RunStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with RunStack(var_dir=tmp_path_factory.mktemp("web-errors")) as stack:
        yield stack


def _raw(stack: RunStack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (httpx would refuse to send some of them) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def _error(headers: dict[str, str], body: bytes) -> str:
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    return json.loads(body)["error"]


def test_a_request_line_over_the_limit_is_a_json_414_that_says_what_to_shorten(stack):
    answer = httpx.get(
        f"{stack.url}/api/v1/nodecluster/",
        params={"name": "a" * 9000},
        headers={"Authorization": stack.auth_header},
    )
    assert answer.status_code == 414
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert "longer than 8190 bytes" in error and "shorter path or fewer query parameters" in error


def test_a_long_request_line_within_the_limit_reaches_the_api(stack):
    # Just under gunicorn's limit: the API itself answers, with its own page.
    answer = httpx.get(
        f"{stack.url}/api/v1/nodecluster/",
        params={"name": "a" * 8000},
        headers={"Authorization": stack.auth_header},
    )
    assert answer.status_code == 200
    assert answer.json()["objects"] == []


def test_an_oversized_header_is_a_json_431(stack):
    answer = httpx.get(
        f"{stack.url}/api/v1/nodecluster/",
        headers={"Authorization": stack.auth_header, "X-Padding": "b" * 9000},
    )
    assert answer.status_code == 431
    assert answer.headers["content-type"] == "application/json"
    assert "send fewer or shorter headers" in answer.json()["error"]


def test_a_request_that_is_not_http_is_a_json_400_and_the_server_keeps_answering(stack):
    status, headers, body = _raw(stack, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert status == 400
    assert headers["connection"] == "close"
    assert "not valid HTTP/1.1" in _error(headers, body)
    status, headers, body = _raw(stack, b"GET /api/v1/nodecluster/ HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n")
    assert status == 400
    assert "not valid HTTP/1.1" in _error(headers, body)
    assert httpx.get(f"{stack.url}/api/v1/nodecluster/", headers={"Authorization": stack.auth_header}).is_success


def test_an_idle_keep_alive_connection_outlives_gunicorns_default_two_seconds(stack):
    # A pooled connection reused after a pause must still be open (keep-alive 75 s in the shared settings).
    opened = []

    def trace(event: str, info: dict) -> None:
        if event.startswith("connection.connect_tcp.started"):
            opened.append(event)

    with httpx.Client(base_url=stack.url, headers={"Authorization": stack.auth_header}) as client:
        assert client.get("/api/v1/nodecluster/", extensions={"trace": trace}).is_success
        time.sleep(3)  # longer than gunicorn's default keep-alive, far shorter than ours
        assert client.get("/api/v1/nodecluster/", extensions={"trace": trace}).is_success
    assert len(opened) == 1, "the second request had to open a new connection"
