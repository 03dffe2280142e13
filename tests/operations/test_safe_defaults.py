"""Defaults that fail safe: a required secret key, a closable /metrics, quiet probes, honest client addresses."""

import logging
import os
import stat
import subprocess
import sys
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.test import Client
from rest_framework.test import APIClient

from nodeclusters import tasks
from nodeclusters.api.authentication import ApiKeyRateThrottle, FailedAuthenticationThrottle
from nodeclusters.choices import NodeClusterState, NodeState
from tests import factories
from tests.api.helpers import assert_error, set_cluster_state
from tests.support.engine import ROOT
from tutum_api.celery import app as celery_app

CLUSTERS = "/api/v1/nodecluster/"
WRONG_KEY = "ApiKey alice:0123456789abcdef0123456789abcdef01234567"
PRINT_SECRET_KEY = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"


def clean_env(var_dir, **extra: str) -> dict[str, str]:
    """An environment like a fresh shell's: nothing of this test run (PYTEST_VERSION, TUTUM_EMBEDDED, the key)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(var_dir),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "tutum_api.settings",
        "TUTUM_VAR_DIR": str(var_dir),
        **extra,
    }


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


# --- The secret key ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-c", "import django; django.setup()"], id="django-setup"),
        pytest.param(["manage.py", "migrate"], id="manage-py"),
        pytest.param(["-m", "celery", "-A", "tutum_api", "inspect", "ping"], id="celery"),
    ],
)
def test_a_process_without_a_secret_key_refuses_to_start_and_says_how_to_set_one(tmp_path, args):
    result = run_python(args, clean_env(tmp_path))

    assert result.returncode != 0, result.stdout
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_an_empty_secret_key_counts_as_none(tmp_path):
    result = run_python(["-c", PRINT_SECRET_KEY], clean_env(tmp_path, DJANGO_SECRET_KEY=""))

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_the_secret_key_comes_from_the_environment_and_no_file_is_written(tmp_path):
    result = run_python(["-c", PRINT_SECRET_KEY], clean_env(tmp_path, DJANGO_SECRET_KEY="from-the-environment"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_the_embedded_key_is_created_once_with_mode_0600_and_reused(tmp_path):
    env = clean_env(tmp_path, TUTUM_EMBEDDED="1")

    first = run_python(["-c", PRINT_SECRET_KEY], env)
    second = run_python(["-c", PRINT_SECRET_KEY], env)

    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 50
    assert first.stdout.strip() == second.stdout.strip() == key
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".secret_key")] == []


def test_runstack_opts_in_by_itself_and_its_children_read_the_same_key(tmp_path):
    """`make run` is `manage.py runstack`: no variable to set, and the processes it starts inherit its key."""
    assert run_python(["manage.py", "runstack", "--help"], clean_env(tmp_path)).returncode == 0
    key = (tmp_path / "secret_key").read_text().strip()
    # What runstack's children (gunicorn, Celery, uvicorn) see: its environment after settings were loaded.
    as_runstack = (
        "import os, subprocess, sys; sys.argv = ['manage.py', 'runstack']; "
        "import django; django.setup(); "
        f"subprocess.run([sys.executable, '-c', {PRINT_SECRET_KEY!r}], check=True)"
    )

    child = run_python(["-c", as_runstack], clean_env(tmp_path))

    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == key


def test_defaults_of_a_fresh_shell(tmp_path):
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['NUM_PROXIES'], settings.API_THROTTLE_RATE, settings.API_FAILED_AUTH_RATE, "
        "repr(settings.METRICS_TOKEN), settings.MESSAGE_STORAGE)"
    )

    result = run_python(["-c", script], clean_env(tmp_path, TUTUM_EMBEDDED="1"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "0",
        "1200/min",
        "30/min",
        "''",
        "django.contrib.messages.storage.session.SessionStorage",
    ]


# --- /metrics ---------------------------------------------------------------------------------------------------------


def _metric(text: str, name: str, **labels) -> float | None:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if line.startswith(f"{name}{{" if labels else f"{name} ") and all(part in line for part in wanted):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no-header"),
        pytest.param("Bearer wrong-token", id="wrong-token"),
        pytest.param("Bearer s3cret-metrics-token-but-longer", id="token-as-prefix"),
        pytest.param("Basic czNjcmV0LW1ldHJpY3MtdG9rZW4=", id="other-scheme"),
    ],
)
def test_metrics_needs_the_token_when_one_is_set(settings, header):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = Client().get("/metrics", **extra)

    body = assert_error(response, 401)
    assert "Bearer" in body["error"]
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "tutum_" not in response.content.decode()


def test_metrics_answers_the_right_token(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"

    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")

    assert response.status_code == 200
    assert "tutum_http_requests_total" in response.content.decode()


def test_metrics_is_open_without_a_token(settings):
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics").status_code == 200


def test_the_state_gauges_come_from_the_beat_task_and_a_scrape_runs_no_query(user, django_assert_num_queries, settings):
    settings.METRICS_TOKEN = ""
    factories.make_cluster(user, name="waiting")
    deployed = set_cluster_state(factories.deploy(factories.make_cluster(user, name="up")), NodeClusterState.DEPLOYED)
    factories.make_node(deployed)
    factories.make_node(deployed, state=NodeState.UNREACHABLE)

    counts = tasks.update_state_gauges()  # the task body, as the worker runs it
    with django_assert_num_queries(0):
        text = Client().get("/metrics").content.decode()

    assert counts["node_clusters"][NodeClusterState.INIT] == 1
    assert _metric(text, "tutum_node_clusters", state="Init") == 1
    assert _metric(text, "tutum_node_clusters", state="Deployed") == 1
    assert _metric(text, "tutum_node_clusters", state="Terminated") == 0  # every state, so none goes stale
    assert _metric(text, "tutum_nodes", state="Deployed") == 1
    assert _metric(text, "tutum_nodes", state="Unreachable") == 1
    assert _metric(text, "tutum_state_gauges_updated_timestamp_seconds") > 0

    # A change shows up once the task has counted again, not at the next scrape.
    factories.make_cluster(user, name="another")
    with django_assert_num_queries(0):
        assert _metric(Client().get("/metrics").content.decode(), "tutum_node_clusters", state="Init") == 1
    tasks.update_state_gauges()
    assert _metric(Client().get("/metrics").content.decode(), "tutum_node_clusters", state="Init") == 2


def test_beat_runs_the_state_gauge_task(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["update-state-gauges"]

    assert entry["task"] == "nodeclusters.update_state_gauges" == tasks.update_state_gauges.name
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == settings.METRICS_STATE_INTERVAL == 30.0
    assert entry["options"]["expires"] == entry["schedule"]


# --- /readyz ----------------------------------------------------------------------------------------------------------


def test_readyz_names_the_database_without_the_error_text(db, caplog):
    error = OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed: password=hunter2')
    with (
        caplog.at_level(logging.ERROR, logger="tutum_api.health"),
        mock.patch("tutum_api.health.connection.cursor", side_effect=error),
    ):
        response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"error": "database unreachable", "checks": {"database": "unreachable"}}
    for secret in ("db.internal", "10.0.0.5", "hunter2"):
        assert secret not in response.content.decode()
    (record,) = [record for record in caplog.records if record.name == "tutum_api.health"]
    assert "database" in record.getMessage()
    assert record.exc_info[1] is error  # operators find the reason in the log


def test_readyz_names_the_broker_without_the_error_text(db, caplog):
    with (
        caplog.at_level(logging.ERROR, logger="tutum_api.health"),
        mock.patch.object(celery_app, "connection_for_write", side_effect=OSError("redis://:hunter2@cache.internal")),
    ):
        response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"error": "broker unreachable", "checks": {"broker": "unreachable"}}
    assert "hunter2" not in response.content.decode()
    assert any("hunter2" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


# --- Failed authentications per client address ------------------------------------------------------------------------


@pytest.fixture
def failed_auth_limit(settings):
    """The request rate at its default and three failed authentications a minute per address."""
    settings.API_THROTTLE_RATE = "1200/min"
    settings.API_FAILED_AUTH_RATE = "3/min"
    cache.clear()
    yield
    cache.clear()


def guess(forwarded_for: str | None = None, *, header: str = WRONG_KEY, remote_addr: str = "127.0.0.1") -> int:
    client = APIClient(REMOTE_ADDR=remote_addr)
    client.credentials(HTTP_AUTHORIZATION=header)
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}
    return client.get(CLUSTERS, **extra).status_code


def test_a_spoofed_x_forwarded_for_does_not_dodge_the_failed_auth_limit(user, failed_auth_limit, settings):
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0

    statuses = [guess(f"203.0.113.{number}") for number in range(5)]

    assert statuses == [401, 401, 401, 429, 429]


def test_behind_declared_proxies_the_forwarded_address_is_counted(user, failed_auth_limit, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    # One proxy: the last X-Forwarded-For entry is the one it added; what the client wrote before it is ignored.
    spoofing = [guess(f"198.51.100.{number}, 203.0.113.7") for number in range(4)]
    other_clients = [guess(f"203.0.113.{number}") for number in range(20, 24)]

    assert spoofing == [401, 401, 401, 429]
    assert other_clients == [401, 401, 401, 401]


def test_an_address_past_the_limit_gets_no_answer_even_to_a_right_key(user, api_key, failed_auth_limit):
    for _ in range(3):
        assert guess() == 401

    right_key = f"ApiKey {user.username}:{api_key}"
    owner = APIClient(REMOTE_ADDR="127.0.0.1")
    owner.credentials(HTTP_AUTHORIZATION=right_key)
    throttled = owner.get(CLUSTERS)

    assert_error(throttled, 429)
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert guess(header=right_key, remote_addr="192.0.2.10") == 200  # other addresses are not affected


def test_failed_authentications_are_limited_far_below_requests(user, api_key, settings):
    settings.API_THROTTLE_RATE = "1200/min"
    settings.API_FAILED_AUTH_RATE = "30/min"
    cache.clear()

    statuses = [guess() for _ in range(31)]
    right_key = f"ApiKey {user.username}:{api_key}"
    requests = [guess(header=right_key, remote_addr="192.0.2.10") for _ in range(40)]
    cache.clear()

    assert statuses == [401] * 30 + [429]
    assert set(requests) == {200}
    failed, allowed = FailedAuthenticationThrottle(), ApiKeyRateThrottle()
    assert failed.num_requests / failed.duration < allowed.num_requests / allowed.duration / 10


@pytest.mark.parametrize(
    ("request_rate", "failed_rate", "expected"),
    [
        pytest.param("1200/min", "30/min", "30/min", id="its-own-rate"),
        pytest.param("3/min", "30/min", "3/min", id="never-above-the-request-rate"),
        pytest.param("1200/min", "", "1200/min", id="empty-means-the-request-rate"),
        pytest.param("", "30/min", None, id="off-with-throttling"),
    ],
)
def test_the_failed_auth_rate(settings, request_rate, failed_rate, expected):
    settings.API_THROTTLE_RATE = request_rate
    settings.API_FAILED_AUTH_RATE = failed_rate

    assert FailedAuthenticationThrottle().rate == expected
