"""The stream server as it runs: uvicorn serving `tutum_api.asgi` on PostgreSQL, woken by Redis hints.

Redis is the test's own (it is stopped and started again); when it is down, commits cannot announce themselves
and events still arrive, found by the stream server's own look at the outbox.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from websockets.sync.client import connect

from tests import factories
from tests.support.engine import ROOT, PrivateRedis, _answers, database_url, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    try:
        server.start()
    except (OSError, AssertionError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis-server missing in CI: {error}")
        pytest.skip(f"redis-server unavailable: {error}")
    yield server
    server.stop()


@pytest.fixture
def stream_server(transactional_db, private_redis, tmp_path, settings):
    if connection.vendor != "postgresql":
        if os.environ.get("CI") == "true":
            pytest.fail("the stream server test needs PostgreSQL in CI")
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    settings.STREAM_REDIS_URL = private_redis.url  # this process's commits announce themselves there
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "STREAM_REDIS_URL": private_redis.url,
        "STREAM_POLL_INTERVAL": "1",
        "TUTUM_VAR_DIR": str(tmp_path),
        "LOG_FORMAT": "plain",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tutum_api.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            "websockets-sansio",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, what="the stream server")
        yield f"ws://127.0.0.1:{port}", log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _next_event(socket, *, timeout: float) -> dict:
    return json.loads(socket.recv(timeout=timeout))


def test_events_arrive_through_a_redis_outage(stream_server, private_redis, catalog):
    url, log_path = stream_server
    user = factories.make_user("alice")
    key = factories.make_api_key(user)
    with connect(f"{url}/v1/events", additional_headers={"Authorization": f"ApiKey alice:{key}"}) as socket:
        socket.ping().wait(5)  # the server answers pings (go-tutum expects a pong within 10 s)

        factories.make_cluster(user, name="before")
        first = [_next_event(socket, timeout=5) for _ in range(2)]

        private_redis.stop()
        factories.make_cluster(user, name="during")  # its hint is lost: Redis is down
        during = [_next_event(socket, timeout=10) for _ in range(2)]

        private_redis.start()
        factories.make_cluster(user, name="after")
        after = [_next_event(socket, timeout=15) for _ in range(2)]

    received = first + during + after
    assert [event["type"] for event in received] == ["nodecluster", "action"] * 3
    ids = [event["id"] for event in received]
    assert ids == list(range(ids[0], ids[0] + 6))  # in order, no gap, no duplicate
    assert "Traceback" not in log_path.read_text(errors="replace")


def test_the_server_keeps_an_idle_events_socket_open(stream_server, catalog):
    """go-tutum never redials: an events socket with nothing to say stays open, answering pings."""
    url, _ = stream_server
    user = factories.make_user("alice")
    key = factories.make_api_key(user)
    with connect(f"{url}/v1/events/?user=alice&token={key}") as socket:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            socket.ping().wait(2)
            time.sleep(0.5)  # a client's ping interval, shortened
        factories.make_cluster(user, name="late")
        assert _next_event(socket, timeout=5)["action"] == "create"
