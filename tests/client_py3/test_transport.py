"""The client's HTTP transport against a scripted server: retries honouring `Retry-After`, errors, URLs, credentials.

No stack: a 429 or a 503 is what a throttle or a proxy in maintenance answers, scripted here so each wait is exact.
The waits are recorded instead of slept, except where a test measures one.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import subprocess
import sys
import time

import pytest
import tutum
from tutum.api import http

from tests.client_py3.conftest import CLIENT_DIR
from tests.client_py3.helpers import Reply, ScriptedApi
from tests.support.engine import free_port

CLUSTER = {
    "uuid": "5516df0b-721e-4470-b350-741ff22e63a0",
    "resource_uri": "/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/",
    "name": "c",
    "state": "Init",
}
PAGE = {"meta": {"limit": 25, "next": None, "offset": 0, "previous": None, "total_count": 1}, "objects": [CLUSTER]}


@pytest.fixture
def waits(monkeypatch):
    """The module's waits pointed at nothing yet; the transport's waits recorded, not slept."""
    monkeypatch.setattr(tutum, "user", "alice")
    monkeypatch.setattr(tutum, "apikey", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setattr(tutum, "tutum_auth", None)
    monkeypatch.setattr(tutum, "basic_auth", None)
    monkeypatch.setattr(tutum, "apikey_auth", None)
    monkeypatch.setattr(tutum, "max_retries", 4)
    monkeypatch.setattr(tutum, "retry_max_wait", 60)
    waits: list[float] = []
    monkeypatch.setattr(http.transport, "sleep", waits.append)
    yield waits
    http.transport.close()


def serve(monkeypatch, replies):
    api = ScriptedApi(replies)
    monkeypatch.setattr(tutum, "base_url", f"{api.url}/api/v1/")
    return api


def test_429_is_retried_after_its_retry_after_seconds(waits, monkeypatch):
    with serve(monkeypatch, [Reply(429, {"error": "throttled"}, {"Retry-After": "3"}), Reply(200, PAGE)]) as api:
        clusters = tutum.NodeCluster.list()

    assert [cluster.uuid for cluster in clusters] == [CLUSTER["uuid"]]
    assert waits == [3.0]
    assert [(request.method, request.path) for request in api.requests] == [("GET", "/api/v1/nodecluster/")] * 2


def test_503_with_an_http_date_waits_until_that_date(waits, monkeypatch):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    with serve(monkeypatch, [Reply(503, {"error": "maintenance"}, {"Retry-After": when}), Reply(200, CLUSTER)]):
        cluster = tutum.NodeCluster.fetch(CLUSTER["uuid"])

    assert cluster.name == "c"
    (wait,) = waits
    assert 17 <= wait <= 20


def test_without_retry_after_the_waits_back_off_exponentially(waits, monkeypatch):
    with serve(monkeypatch, [Reply(503, {"error": "x"})] * 3 + [Reply(200, CLUSTER)]):
        tutum.NodeCluster.fetch(CLUSTER["uuid"])

    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 0.5 * 2**attempt <= wait <= 0.5 * 2**attempt * 1.25


def test_a_write_is_retried_with_the_same_request(waits, monkeypatch):
    created = {**CLUSTER, "state": "Init"}
    replies = [
        Reply(429, {"error": "throttled"}, {"Retry-After": "1"}),
        Reply(201, created, {"X-Tutum-Action-URI": "/api/v1/action/a/"}),
    ]
    with serve(monkeypatch, replies) as api:
        cluster = tutum.NodeCluster.create(name="c", region="/api/v1/region/digitalocean/lon1/")
        assert cluster.save() is True

    first, second = api.requests
    assert (first.method, first.path, first.body) == (second.method, second.path, second.body)
    assert (first.method, first.path) == ("POST", "/api/v1/nodecluster/")
    assert json.loads(first.body) == {"name": "c", "region": "/api/v1/region/digitalocean/lon1/"}
    assert {key: value for key, value in first.headers.items() if key != "Host"} == {
        key: value for key, value in second.headers.items() if key != "Host"
    }
    assert cluster.tutum_action_uri == "/api/v1/action/a/"
    assert waits == [1.0]


def test_it_gives_up_after_max_retries_with_the_last_answer(waits, monkeypatch):
    replies = [Reply(429, {"error": "Request was throttled."}, {"Retry-After": "2"})] * 5
    with serve(monkeypatch, replies) as api, pytest.raises(tutum.TutumApiError) as raised:
        tutum.NodeCluster.list()

    assert len(api.requests) == 5  # the first try and max_retries (4) retries
    assert waits == [2.0] * 4
    error = raised.value
    assert (error.status_code, error.error, error.retry_after) == (429, "Request was throttled.", 2.0)
    assert str(error).startswith("Status 429 (GET http://127.0.0.1:")  # python-tutum's message


def test_a_retry_after_beyond_the_longest_wait_is_not_waited_for(waits, monkeypatch):
    monkeypatch.setattr(tutum, "retry_max_wait", 30)
    replies = [Reply(503, {"error": "down"}, {"Retry-After": "3600"})]
    with serve(monkeypatch, replies) as api, pytest.raises(tutum.TutumApiError) as raised:
        tutum.NodeCluster.list()

    assert len(api.requests) == 1
    assert waits == []
    assert raised.value.retry_after == 3600


def test_the_real_wait_honours_retry_after(waits, monkeypatch):
    monkeypatch.setattr(http.transport, "sleep", time.sleep)
    with serve(monkeypatch, [Reply(429, {"error": "throttled"}, {"Retry-After": "1"}), Reply(200, PAGE)]) as api:
        started = time.monotonic()
        tutum.NodeCluster.list()
        elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 3
    assert len(api.requests) == 2


def test_an_unreachable_host_is_retried_then_reported(waits, monkeypatch):
    monkeypatch.setattr(tutum, "base_url", f"http://127.0.0.1:{free_port()}/api/v1/")

    with pytest.raises(tutum.TutumApiError) as raised:
        tutum.NodeCluster.list()

    assert str(raised.value).startswith("No Response (GET http://127.0.0.1:")
    assert raised.value.status_code is None
    assert len(waits) == 4


def test_a_timed_out_read_is_retried_but_a_timed_out_write_is_not(waits, monkeypatch):
    monkeypatch.setattr(tutum, "timeout", 0.3)
    with serve(monkeypatch, [Reply(200, PAGE, delay=1.0), Reply(200, PAGE)]) as api:
        assert len(tutum.NodeCluster.list()) == 1
    assert len(api.requests) == 2

    slow = [Reply(201, CLUSTER, delay=1.0)]
    with serve(monkeypatch, slow) as api, pytest.raises(tutum.TutumApiError, match="No Response"):
        tutum.NodeCluster.create(name="c").save()
    assert len(api.requests) == 1  # it may have been done: not sent twice (until the server has Idempotency-Key)


def test_401_is_tutum_auth_error_and_4xx_carry_the_servers_message(waits, monkeypatch):
    with serve(monkeypatch, [Reply(401, {"error": "Invalid API key"})]), pytest.raises(tutum.TutumAuthError) as raised:
        tutum.NodeCluster.list()
    assert str(raised.value) == "Not authorized"
    assert raised.value.status_code == 401

    conflict = {"error": "node cluster is Terminated; allowed: nothing"}
    with serve(monkeypatch, [Reply(200, CLUSTER), Reply(409, conflict)]):
        cluster = tutum.NodeCluster.fetch(CLUSTER["uuid"])
        with pytest.raises(tutum.TutumApiError) as raised:
            cluster.deploy()
    assert (raised.value.status_code, raised.value.error) == (409, conflict["error"])
    assert raised.value.method == "POST"
    assert raised.value.url.endswith(f"/api/v1/nodecluster/{CLUSTER['uuid']}/deploy/")


def test_urls_get_tutums_trailing_slash_and_keep_queries(waits, monkeypatch):
    monkeypatch.setattr(tutum, "base_url", "http://api.example:8000/api/v1/")

    assert http.build_url("/nodecluster") == "http://api.example:8000/api/v1/nodecluster/"
    assert http.build_url("/nodetype/digitalocean/1gb") == "http://api.example:8000/api/v1/nodetype/digitalocean/1gb/"
    assert http.build_url("/api/v1/node/?limit=1&offset=1") == "http://api.example:8000/api/v1/node/?limit=1&offset=1"
    assert http.build_url("/api/v1/action/abc/") == "http://api.example:8000/api/v1/action/abc/"
    assert http.build_url("https://other.example/x/") == "https://other.example/x/"


def test_headers_name_the_client_and_the_credentials(waits, monkeypatch):
    monkeypatch.setattr(tutum, "user_agent", "my-script/1.0")
    with serve(monkeypatch, [Reply(200, PAGE)]) as api:
        tutum.NodeCluster.list()

    (request,) = api.requests
    assert request.headers["User-Agent"] == f"my-script/1.0 python-tutum/{tutum.__version__}"
    assert request.headers["Accept"] == "application/json"
    expected = base64.b64encode(f"alice:{tutum.apikey}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


def _auth_header_in_a_fresh_process(tmp_path, env: dict[str, str], config: str | None = None) -> str:
    """`tutum.auth.get_auth_header()` as a script sees it at import, from the environment and ~/.tutum."""
    if config is not None:
        (tmp_path / ".tutum").write_text(config)
    answer = subprocess.run(
        [sys.executable, "-c", "import json, tutum; print(json.dumps(tutum.auth.get_auth_header()))"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(CLIENT_DIR), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout).get("Authorization", "")


def test_credentials_come_from_tutum_auth_then_the_environment_then_the_config_file(tmp_path):
    def basic(user, key):
        return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()

    config = "[auth]\nuser = carol\napikey = cafe\n"
    assert _auth_header_in_a_fresh_process(tmp_path, {}, config) == basic("carol", "cafe")
    env = {"TUTUM_USER": "bob", "TUTUM_APIKEY": "beef"}
    assert _auth_header_in_a_fresh_process(tmp_path, env, config) == basic("bob", "beef")
    env["TUTUM_AUTH"] = "ApiKey dave:f00d"
    assert _auth_header_in_a_fresh_process(tmp_path, env, config) == "ApiKey dave:f00d"
    # The official CLI's `tutum login` writes a quoted basic_auth.
    quoted = '[auth]\nbasic_auth = "' + base64.b64encode(b"erin:d00d").decode() + '"\n'
    assert _auth_header_in_a_fresh_process(tmp_path, {}, quoted) == basic("erin", "d00d")
    assert _auth_header_in_a_fresh_process(tmp_path, {"TUTUM_USER": "frank", "TUTUM_PASS": "pw"}, "") == basic(
        "frank", "pw"
    )


def test_hosts_come_from_the_environment_with_the_stream_beside_the_rest_host(tmp_path):
    script = "import json, tutum; print(json.dumps([tutum.base_url, tutum.stream_url]))"

    def hosts(env):
        answer = subprocess.run(
            [sys.executable, "-c", script],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(CLIENT_DIR), **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert answer.returncode == 0, answer.stderr
        return json.loads(answer.stdout)

    assert hosts({}) == ["http://127.0.0.1:8000/api/v1/", "ws://127.0.0.1:8001/v1/"]  # make run's
    assert hosts({"TUTUM_REST_HOST": "https://tutum.example"}) == [
        "https://tutum.example/api/v1/",
        "wss://tutum.example/v1/",
    ]
    assert hosts({"TUTUM_REST_HOST": "http://10.0.0.5:9000", "TUTUM_STREAM_HOST": "ws://10.0.0.6:9"}) == [
        "http://10.0.0.5:9000/api/v1/",
        "ws://10.0.0.6:9/v1/",
    ]
