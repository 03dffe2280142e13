"""ETag, If-None-Match and If-Match: reads answer 304 for what the client has, writes over a stale read answer 412."""

import re
import threading

import pytest
import requests
from django.db import transaction

from nodeclusters.api.conditional import etag_of
from nodeclusters.choices import ActionState, NodeClusterState
from nodeclusters.models import Action, Node, NodeCluster
from tests import factories
from tests.api.helpers import (
    action_url,
    assert_error,
    cluster_snapshot,
    cluster_url,
    header_action,
    node_url,
    set_cluster_state,
)
from tests.support.postgres import lock_waiters, require_postgresql, wait_for

STRONG_ETAG = re.compile(r'^"[0-9a-f]{64}"$')


@pytest.fixture
def cluster(user, catalog):
    return factories.make_cluster(user, name="etag", target_num_nodes=2)


@pytest.fixture
def deployed(user, catalog):
    cluster = set_cluster_state(factories.make_cluster(user, name="up", target_num_nodes=1), NodeClusterState.DEPLOYED)
    factories.make_node(cluster)
    return cluster


def etag(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response["ETag"]


def assert_stale(response) -> None:
    body = assert_error(response, 412)
    assert "changed since" in body["error"] and "GET it again" in body["error"], body


# --- ETag and If-None-Match ------------------------------------------------------------------------------------------


def test_detail_reads_carry_a_strong_etag_of_their_json(client, deployed):
    node = deployed.nodes.get()
    action = Action.objects.filter(node_cluster=deployed).first()
    for url in (cluster_url(deployed), node_url(node), action_url(action)):
        response = client.get(url)
        assert response.status_code == 200
        assert STRONG_ETAG.match(response["ETag"]), response["ETag"]
        assert response["ETag"] == etag_of(response.json())
        assert client.get(url)["ETag"] == response["ETag"]  # nothing changed, same tag


def test_lists_carry_no_etag(client, deployed):
    assert not client.get("/api/v1/nodecluster/").has_header("ETag")


def test_if_none_match_with_the_current_etag_is_304_without_a_body(client, deployed):
    url = cluster_url(deployed)
    current = etag(client, url)
    for header in (current, f"W/{current}", f'"other", {current}', "*"):
        response = client.get(url, HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response.content == b""
        assert response["ETag"] == current


def test_if_none_match_with_an_old_etag_gets_the_object(client, deployed):
    url = cluster_url(deployed)
    old = etag(client, url)
    client.patch(url, {"nickname": "renamed"}, format="json")

    response = client.get(url, HTTP_IF_NONE_MATCH=old)

    assert response.status_code == 200
    assert response.json()["nickname"] == "renamed"
    assert response["ETag"] != old


def test_if_none_match_on_someone_elses_cluster_is_404(other_client, deployed, client):
    response = other_client.get(cluster_url(deployed), HTTP_IF_NONE_MATCH=etag(client, cluster_url(deployed)))
    assert_error(response, 404)


def test_a_synchronous_change_answers_with_the_etag_the_next_read_has(client, deployed):
    response = client.patch(cluster_url(deployed), {"nickname": "renamed"}, format="json")
    assert response.status_code == 200, response.content
    assert response["ETag"] == etag(client, cluster_url(deployed))


def test_write_answers_carry_the_etag_of_the_object_they_return(client, deployed, cluster):
    node = deployed.nodes.get()
    answers = [
        client.post("/api/v1/nodecluster/", {**CREATE_BODY, "name": "fresh"}, format="json"),
        client.patch(cluster_url(deployed), {"nickname": "renamed"}, format="json"),
        client.post(cluster_url(cluster, "deploy/")),
        client.post(node_url(node, "health-check/")),
        client.post(action_url(Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy"), "cancel/")),
        client.delete(node_url(node)),
    ]
    for response in answers:
        assert response.status_code in (200, 201, 202), response.content
        assert response["ETag"] == etag_of(response.json())


CREATE_BODY = {
    "name": "api",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
}


# --- If-Match ----------------------------------------------------------------------------------------------------


def test_patch_with_the_current_etag_runs(client, cluster):
    url = cluster_url(cluster)
    response = client.patch(url, {"nickname": "mine"}, format="json", HTTP_IF_MATCH=etag(client, url))
    assert response.status_code == 200, response.content
    assert NodeCluster.objects.get(pk=cluster.pk).nickname == "mine"
    assert header_action(response).node_cluster_id == cluster.pk


def test_patch_with_a_stale_etag_is_412_and_changes_nothing(client, cluster):
    url = cluster_url(cluster)
    read = etag(client, url)
    client.patch(url, {"nickname": "someone else"}, format="json")
    before = cluster_snapshot(cluster)

    response = client.patch(url, {"nickname": "mine", "target_num_nodes": 5}, format="json", HTTP_IF_MATCH=read)

    assert_stale(response)
    assert not response.has_header("X-Tutum-Action-URI")
    assert cluster_snapshot(cluster) == before


def test_if_match_star_matches_any_existing_object(client, cluster):
    response = client.patch(cluster_url(cluster), {"nickname": "any"}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200, response.content


def test_a_weak_etag_never_matches_if_match(client, cluster):
    url = cluster_url(cluster)
    before = cluster_snapshot(cluster)
    assert_stale(client.patch(url, {"nickname": "weak"}, format="json", HTTP_IF_MATCH=f"W/{etag(client, url)}"))
    assert cluster_snapshot(cluster) == before


def test_if_match_lists_and_junk(client, cluster):
    url = cluster_url(cluster)
    current = etag(client, url)
    before = cluster_snapshot(cluster)
    for junk in ("", "not-quoted", current.strip('"'), '"0000"'):
        assert_stale(client.patch(url, {"nickname": "junk"}, format="json", HTTP_IF_MATCH=junk))
    assert cluster_snapshot(cluster) == before
    response = client.patch(url, {"nickname": "listed"}, format="json", HTTP_IF_MATCH=f'"0000", {current}')
    assert response.status_code == 200, response.content


def test_stale_delete_and_deploy_do_nothing(client, cluster):
    url = cluster_url(cluster)
    read = etag(client, url)
    client.patch(url, {"tags": [{"name": "moved-on"}]}, format="json")
    before = cluster_snapshot(cluster)

    assert_stale(client.post(cluster_url(cluster, "deploy/"), HTTP_IF_MATCH=read))
    assert_stale(client.delete(url, HTTP_IF_MATCH=read))

    assert cluster_snapshot(cluster) == before
    deployed = client.post(cluster_url(cluster, "deploy/"), HTTP_IF_MATCH=etag(client, url))
    assert deployed.status_code == 202, deployed.content


def test_a_stale_docker_upgrade_does_nothing(client, deployed):
    url = cluster_url(deployed)
    read = etag(client, url)
    client.patch(url, {"nickname": "moved on"}, format="json")
    before = cluster_snapshot(deployed)

    assert_stale(client.post(cluster_url(deployed, "docker-upgrade/"), HTTP_IF_MATCH=read))

    assert cluster_snapshot(deployed) == before


def test_node_writes_compare_the_nodes_etag(client, deployed):
    node = deployed.nodes.get()
    url = node_url(node)
    read = etag(client, url)
    Node.objects.filter(pk=node.pk).update(public_ip="198.18.0.99")  # the engine saw the node change
    before = Node.objects.values().get(pk=node.pk)
    actions_before = Action.objects.count()

    for response in (
        client.patch(url, {"nickname": "n"}, format="json", HTTP_IF_MATCH=read),
        client.post(node_url(node, "health-check/"), HTTP_IF_MATCH=read),
        client.post(node_url(node, "docker-upgrade/"), HTTP_IF_MATCH=read),
        client.delete(url, HTTP_IF_MATCH=read),
    ):
        assert_stale(response)
    assert Node.objects.values().get(pk=node.pk) == before
    assert Action.objects.count() == actions_before

    response = client.delete(url, HTTP_IF_MATCH=etag(client, url))
    assert response.status_code == 202, response.content


def test_action_posts_compare_the_actions_etag(client, cluster):
    factories.deploy(cluster)
    deploy = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    Action.objects.filter(pk=deploy.pk).update(state=ActionState.PENDING)
    read = etag(client, action_url(deploy))
    Action.objects.filter(pk=deploy.pk).update(state=ActionState.IN_PROGRESS)  # the engine picked it up

    assert_stale(client.post(action_url(deploy, "cancel/"), HTTP_IF_MATCH=read))
    assert Action.objects.get(pk=deploy.pk).state == ActionState.IN_PROGRESS

    response = client.post(action_url(deploy, "cancel/"), HTTP_IF_MATCH=etag(client, action_url(deploy)))
    assert response.status_code == 202, response.content
    assert response.json()["state"] == ActionState.CANCELING


def test_an_error_the_write_would_answer_anyway_comes_before_412(client, cluster):
    """RFC 9110 13.2.1: bad input or a state conflict is the answer, not the failed precondition."""
    url = cluster_url(cluster)
    read = etag(client, url)
    client.patch(url, {"nickname": "moved on"}, format="json")
    before = cluster_snapshot(cluster)

    assert_error(client.patch(url, {"target_num_nodes": -1}, format="json", HTTP_IF_MATCH=read), 400)
    assert_error(client.post(cluster_url(cluster, "docker-upgrade/"), HTTP_IF_MATCH=read), 409)  # not deployed
    assert cluster_snapshot(cluster) == before


def test_if_match_on_an_object_that_is_not_yours_is_404(other_client, client, cluster):
    read = etag(client, cluster_url(cluster))
    assert_error(other_client.patch(cluster_url(cluster), {"nickname": "x"}, format="json", HTTP_IF_MATCH=read), 404)
    assert_error(other_client.delete(cluster_url(cluster), HTTP_IF_MATCH="*"), 404)


# --- two writers at once (PostgreSQL, a live server) -----------------------------------------------------------------


@pytest.mark.integration
def test_two_writers_with_the_same_etag_one_wins_one_gets_412(live_server, transactional_db, catalog, settings):
    require_postgresql()
    user = factories.make_user("alice")
    raw_key = factories.make_api_key(user)
    cluster = factories.make_cluster(user, name="contended")
    url = f"{live_server.url}{cluster_url(cluster)}"
    session_headers = {"Authorization": f"ApiKey alice:{raw_key}"}
    read = requests.get(url, headers=session_headers, timeout=10).headers["ETag"]
    answers = {}

    def write(nickname: str) -> None:
        answers[nickname] = requests.patch(
            url, json={"nickname": nickname}, headers={**session_headers, "If-Match": read}, timeout=30
        )

    writers = [threading.Thread(target=write, args=(name,)) for name in ("first", "second")]
    # Both writers are in flight together: they queue behind a lock the test holds on the cluster's row.
    with transaction.atomic():
        NodeCluster.objects.select_for_update().get(pk=cluster.pk)
        for writer in writers:
            writer.start()
        wait_for(lambda: lock_waiters() >= 2, "both writers to wait for the cluster's row")
    for writer in writers:
        writer.join(timeout=30)

    statuses = sorted(response.status_code for response in answers.values())
    assert statuses == [200, 412], {name: response.text for name, response in answers.items()}
    winner = next(name for name, response in answers.items() if response.status_code == 200)
    assert NodeCluster.objects.get(pk=cluster.pk).nickname == winner
    assert Action.objects.filter(node_cluster=cluster, action="Node Cluster Update").count() == 1
