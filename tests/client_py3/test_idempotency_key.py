"""The client's writes carry an Idempotency-Key: one per logical write, the same on every retry of it."""

from __future__ import annotations

import re

import pytest
import tutum
from tutum.api import http

from tests.client_py3.helpers import Reply, ScriptedApi

CLUSTER = {
    "uuid": "5516df0b-721e-4470-b350-741ff22e63a0",
    "resource_uri": "/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/",
    "name": "c",
    "state": "Init",
}
KEY_PATTERN = r"^[!-~]{1,255}$"  # what the server accepts (nodeclusters.api.idempotency.KEY_PATTERN)


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(tutum, "user", "alice")
    monkeypatch.setattr(tutum, "apikey", "0123456789abcdef0123456789abcdef01234567")
    for name in ("tutum_auth", "basic_auth", "apikey_auth"):
        monkeypatch.setattr(tutum, name, None)
    monkeypatch.setattr(tutum, "max_retries", 4)
    monkeypatch.setattr(http.transport, "sleep", lambda seconds: None)

    def serve(replies):
        api = ScriptedApi(replies)
        monkeypatch.setattr(tutum, "base_url", f"{api.url}/api/v1/")
        return api

    yield serve
    http.transport.close()


def test_a_retried_write_resends_its_key_and_a_new_write_draws_another(scripted):
    replies = [Reply(503, {"error": "db down"}, {"Retry-After": "0"}), Reply(201, CLUSTER), Reply(202, CLUSTER)]
    with scripted(replies) as api:
        tutum.NodeCluster.create(name="c").save()
        http.transport.write("POST", f"{CLUSTER['resource_uri']}deploy/")

    first, retry, other = (request.headers["Idempotency-Key"] for request in api.requests)
    assert first == retry
    assert other != first
    assert re.fullmatch(KEY_PATTERN, first)


def test_a_key_given_by_the_caller_is_sent(scripted):
    with scripted([Reply(202, CLUSTER)]) as api:
        http.transport.write("DELETE", CLUSTER["resource_uri"], idempotency_key="my-own-key")

    assert api.requests[0].headers["Idempotency-Key"] == "my-own-key"


def test_reads_carry_no_key(scripted):
    with scripted([Reply(200, CLUSTER)]) as api:
        tutum.NodeCluster.fetch(CLUSTER["uuid"])

    assert "Idempotency-Key" not in api.requests[0].headers
