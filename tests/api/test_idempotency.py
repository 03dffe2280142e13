"""Idempotency-Key: a repeated write replays its first answer and does nothing again; misuse is a clear 4xx."""

import datetime
import threading
from unittest import mock

import pytest
import requests
from django.db import transaction
from django.test import RequestFactory
from django.utils import timezone

from nodeclusters import services
from nodeclusters.api.idempotency import request_fingerprint
from nodeclusters.models import Action, IdempotencyKey, NodeCluster
from nodeclusters.services.idempotency_keys import idempotency_key_claim
from nodeclusters.tasks import prune_idempotency_keys
from tests import factories
from tests.api.helpers import ACTION_HEADER, assert_error, cluster_snapshot, cluster_url
from tests.support.postgres import lock_waiters, require_postgresql, wait_for

CREATE_BODY = {
    "name": "keyed",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
}
CLUSTERS = "/api/v1/nodecluster/"
REPLAYED = "Idempotent-Replayed"


def create(client, key: str | None = "key-1", body: dict | None = None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(CLUSTERS, body if body is not None else CREATE_BODY, format="json", **headers)


def test_a_repeated_create_replays_the_first_answer_and_creates_nothing(client, user):
    first = create(client)
    assert first.status_code == 201, first.content
    assert not first.has_header("Idempotent-Replayed")

    again = create(client)

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    for header in (ACTION_HEADER, "ETag", "Content-Type"):
        assert again[header] == first[header], header
    assert NodeCluster.objects.filter(owner=user).count() == 1
    assert Action.objects.filter(owner=user).count() == 1
    row = IdempotencyKey.objects.get(owner=user, key="key-1")
    assert (row.status_code, row.completed_at is not None) == (201, True)


def test_stored_answers_are_encrypted_at_rest(client, user):
    first = create(client, key="sealed")
    stored = bytes(IdempotencyKey.objects.get(key="sealed").body)
    assert first.json()["uuid"].encode() not in stored  # an answer may show a secret once (a webhook's)
    assert create(client, key="sealed").content == first.content


def test_without_a_key_to_encrypt_with_nothing_is_stored_and_the_write_still_works(client, user, settings):
    settings.CREDENTIALS_KEYS = []
    assert create(client, key="unsealed").status_code == 201
    assert not IdempotencyKey.objects.exists()


def test_the_same_request_in_other_words_is_the_same_request(client, user):
    first = create(client, body={"node_type": CREATE_BODY["node_type"], **CREATE_BODY})
    # Another key order, a path without its trailing slash: the same write.
    again = client.post(
        CLUSTERS.rstrip("/"), dict(reversed(list(CREATE_BODY.items()))), format="json", HTTP_IDEMPOTENCY_KEY="key-1"
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert NodeCluster.objects.filter(owner=user).count() == 1


def test_a_repeated_delete_replays_and_terminates_once(client, user):
    cluster = factories.make_cluster(user)
    first = client.delete(cluster_url(cluster), HTTP_IDEMPOTENCY_KEY="bye")
    assert first.status_code == 202, first.content
    after_first = cluster_snapshot(cluster)

    again = client.delete(cluster_url(cluster), HTTP_IDEMPOTENCY_KEY="bye")

    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again[ACTION_HEADER] == first[ACTION_HEADER]
    assert cluster_snapshot(cluster) == after_first
    # Without the key, the same DELETE is a new request: the cluster is Terminating already.
    assert_error(client.delete(cluster_url(cluster)), 409)


def test_an_answer_below_500_is_stored_and_replayed_too(client, user):
    first = create(client, body={"name": "no-region"})
    assert_error(first, 400)

    again = create(client, body={"name": "no-region"})

    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert not NodeCluster.objects.exists()


def test_the_same_key_with_another_body_is_422(client, user):
    create(client)
    before = list(NodeCluster.objects.values_list("pk", flat=True))

    body = assert_error(create(client, body={**CREATE_BODY, "name": "other"}), 422)

    assert "different request" in body["error"]
    assert list(NodeCluster.objects.values_list("pk", flat=True)) == before


def test_the_same_key_on_another_path_or_method_is_422(client, user):
    cluster = factories.make_cluster(user)
    create(client)
    before = cluster_snapshot(cluster)
    key = {"HTTP_IDEMPOTENCY_KEY": "key-1"}

    assert_error(client.patch(cluster_url(cluster), {"nickname": "x"}, format="json", **key), 422)
    assert_error(client.post(cluster_url(cluster, "deploy/"), **key), 422)
    assert_error(client.post(f"{CLUSTERS}?dry_run=true", CREATE_BODY, format="json", **key), 422)

    assert cluster_snapshot(cluster) == before
    assert NodeCluster.objects.count() == 2


def test_a_repeat_while_the_first_still_runs_is_409(client, user):
    idempotency_key_claim(owner=user, key="busy", fingerprint=fingerprint_of(CREATE_BODY))

    body = assert_error(create(client, key="busy"), 409)

    assert "still being processed" in body["error"]
    assert not NodeCluster.objects.exists()
    assert IdempotencyKey.objects.get(key="busy").status_code is None  # the first request's claim stands


def fingerprint_of(body: dict) -> str:
    """The fingerprint of a create with `body`, as the server computes it."""
    return request_fingerprint(RequestFactory().post(CLUSTERS, body, content_type="application/json"))


def test_a_failed_first_request_releases_the_key(client, user):
    with mock.patch.object(services, "node_cluster_create", side_effect=RuntimeError("boom")):
        failed = create(client, key="retry-me")
    assert_error(failed, 500)
    assert not IdempotencyKey.objects.filter(key="retry-me").exists()

    retried = create(client, key="retry-me")

    assert retried.status_code == 201, retried.content
    assert not retried.has_header("Idempotent-Replayed")
    assert NodeCluster.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize("key", ["k" * 256, "with space", "", "ünïcode"])
def test_a_malformed_key_is_400_and_nothing_runs(client, key):
    body = assert_error(create(client, key=key), 400)
    assert "Idempotency-Key" in body["error"]
    assert not NodeCluster.objects.exists()
    assert not IdempotencyKey.objects.exists()


def test_a_key_of_255_characters_is_fine(client):
    assert create(client, key="k" * 255).status_code == 201


def test_keys_are_per_user(client, other_client, user, other_user):
    assert create(client).status_code == 201
    theirs = create(other_client)
    assert theirs.status_code == 201 and not theirs.has_header("Idempotent-Replayed")
    assert NodeCluster.objects.filter(owner=user).count() == 1
    assert NodeCluster.objects.filter(owner=other_user).count() == 1


def test_unauthenticated_and_throttled_requests_are_not_keyed(anonymous_client, client, settings):
    assert_error(create(anonymous_client), 401)
    settings.API_THROTTLE_RATE = "1/hour"
    client.get("/api/v1/auth/")
    assert_error(create(client), 429)
    assert not IdempotencyKey.objects.exists()


def test_a_method_the_path_does_not_have_is_405_whatever_the_key(client, user):
    create(client)
    assert_error(client.put(CLUSTERS, CREATE_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-1"), 405)
    assert_error(client.put(CLUSTERS, CREATE_BODY, format="json", HTTP_IDEMPOTENCY_KEY="new"), 405)
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["key-1"]


def test_reads_are_not_keyed(client):
    assert client.get(CLUSTERS, HTTP_IDEMPOTENCY_KEY="read").status_code == 200
    assert not IdempotencyKey.objects.exists()


def test_a_key_older_than_24_hours_runs_again_and_beat_prunes_it(client, user):
    create(client, key="old")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - datetime.timedelta(hours=25))

    again = create(client, key="old")

    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert NodeCluster.objects.filter(owner=user).count() == 2
    create(client, key="fresh", body={**CREATE_BODY, "name": "fresh"})
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - datetime.timedelta(hours=25))
    assert prune_idempotency_keys() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_key_whose_request_died_is_free_after_the_running_timeout(client, user, settings):
    idempotency_key_claim(owner=user, key="orphan", fingerprint=fingerprint_of(CREATE_BODY))
    IdempotencyKey.objects.filter(key="orphan").update(
        created_at=timezone.now() - datetime.timedelta(seconds=settings.IDEMPOTENCY_RUNNING_SECONDS + 1)
    )
    assert create(client, key="orphan").status_code == 201


# --- two identical requests at once (PostgreSQL, a live server) ------------------------------------------------------


@pytest.mark.integration
def test_two_identical_posts_at_once_make_one_cluster(live_server, transactional_db, catalog):
    require_postgresql()
    user = factories.make_user("alice")
    headers = {"Authorization": f"ApiKey alice:{factories.make_api_key(user)}", "Idempotency-Key": "twins"}
    answers = []

    def post() -> None:
        answers.append(requests.post(f"{live_server.url}{CLUSTERS}", json=CREATE_BODY, headers=headers, timeout=30))

    twins = [threading.Thread(target=post) for _ in range(2)]
    # Both requests are in flight together: their claims of the key queue behind a row the test holds with it.
    with transaction.atomic():
        IdempotencyKey.objects.create(owner=user, key="twins", fingerprint="held by the test")
        for twin in twins:
            twin.start()
        wait_for(lambda: lock_waiters() >= 2, "both requests to wait for the key")
        transaction.set_rollback(True)
    for twin in twins:
        twin.join(timeout=30)

    assert NodeCluster.objects.filter(owner=user).count() == 1
    assert Action.objects.filter(owner=user, action="Node Cluster Create").count() == 1
    assert len(answers) == 2
    (first,) = [
        answer for answer in answers if answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers
    ]
    (second,) = [answer for answer in answers if answer is not first]
    # The twin either found the first still running or got its stored answer.
    if second.status_code == 201:
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
    else:
        assert second.status_code == 409, second.text
        assert "still being processed" in second.json()["error"]
