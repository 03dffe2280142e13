"""`/api/v1/node/`: list, get, PATCH (nickname, tags), DELETE, health-check, docker-upgrade, and the state table."""

import datetime

import pytest

from nodeclusters.choices import NODE_ALLOWED, ActionState, NodeClusterState, NodeOperation, NodeState
from nodeclusters.models import Action, AvailabilityZone, Node, NodeCluster
from tests import factories
from tests.api.helpers import (
    RECONCILE_TASK,
    assert_error,
    assert_rfc2822_or_none,
    hand_offs,
    header_action,
    node_url,
    set_cluster_state,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/node/"
HEALTH_TASK = "nodeclusters.check_node_health"

#: node.md's attributes and the JSON types each must have.
ATTRIBUTE_TYPES = {
    "availability_zone": (str, type(None)),
    "uuid": str,
    "resource_uri": str,
    "external_fqdn": str,
    "state": str,
    "node_cluster": (str, type(None)),
    "node_type": str,
    "region": str,
    "docker_execdriver": str,
    "docker_graphdriver": str,
    "docker_version": str,
    "cpu": int,
    "disk": int,
    "memory": int,
    "last_metric": dict,
    "current_num_containers": int,
    "last_seen": (str, type(None)),
    "public_ip": (str, type(None)),
    "tunnel": (str, type(None)),
    "deployed_datetime": (str, type(None)),
    "destroyed_datetime": (str, type(None)),
    "tags": list,
    "nickname": str,
}


@pytest.fixture
def cluster(user, catalog):
    cluster = factories.make_cluster(user, target_num_nodes=3, tags=["web"])
    return set_cluster_state(cluster, NodeClusterState.DEPLOYED)


@pytest.fixture
def node(cluster) -> Node:
    return factories.make_node(cluster, external_fqdn="fc1a5bb9-user.node.tutum.io")


def node_snapshot(node: Node) -> dict:
    row = Node.objects.values().get(pk=node.pk)
    row["action_count"] = Action.objects.filter(node_id=node.pk).count()
    if node.node_cluster_id:
        row["cluster"] = NodeCluster.objects.values("state", "target_num_nodes").get(pk=node.node_cluster_id)
    return row


# --- reads --------------------------------------------------------------------------------------------------------


def test_detail_of_an_aws_node_has_every_documented_attribute(client, user):
    cluster = factories.make_cluster(user, provider="aws", region_name="us-east-1", type_name="t2.micro")
    seen = datetime.datetime(2014, 9, 25, 13, 14, 44, tzinfo=datetime.UTC)
    node = factories.make_node(
        cluster,
        availability_zone=AvailabilityZone.objects.get(region__name="us-east-1", name="us-east-1b"),
        external_fqdn="fc1a5bb9-user.node.tutum.io",
        public_ip="10.45.2.11",
        cpu=1,
        memory=1792,
        disk=60,
        docker_version="1.5.0",
        docker_execdriver="native-0.2",
        docker_graphdriver="aufs",
        current_num_containers=4,
        last_metric={"cpu": 1.3278507035616, "disk": 462479360, "memory": 763170816},
        tunnel="https://tunnel01.tutum.co:12345",
        last_seen=seen,
        deployed_datetime=datetime.datetime(2014, 9, 16, 17, 1, 15, tzinfo=datetime.UTC),
        tags=["tag_one", "tag-two"],
    )

    response = client.get(node_url(node))

    assert response.status_code == 200
    assert response.json() == {
        "availability_zone": "/api/v1/az/aws/us-east-1/us-east-1b/",
        "cpu": 1,
        "current_num_containers": 4,
        "deployed_datetime": "Tue, 16 Sep 2014 17:01:15 +0000",
        "destroyed_datetime": None,
        "disk": 60,
        "docker_execdriver": "native-0.2",
        "docker_graphdriver": "aufs",
        "docker_version": "1.5.0",
        "external_fqdn": "fc1a5bb9-user.node.tutum.io",
        "failure_reason_code": None,
        "last_seen": "Thu, 25 Sep 2014 13:14:44 +0000",
        "memory": 1792,
        "nickname": "fc1a5bb9-user.node.tutum.io",
        "last_metric": {"cpu": 1.3278507035616, "disk": 462479360, "memory": 763170816},
        "node_cluster": f"/api/v1/nodecluster/{cluster.uuid}/",
        "node_type": "/api/v1/nodetype/aws/t2.micro/",
        "public_ip": "10.45.2.11",
        "region": "/api/v1/region/aws/us-east-1/",
        "resource_uri": f"/api/v1/node/{node.uuid}/",
        "state": "Deployed",
        "tags": [{"name": "tag_one"}, {"name": "tag-two"}],
        "tunnel": "https://tunnel01.tutum.co:12345",
        "uuid": str(node.uuid),
    }


def test_a_node_being_deployed_has_nulls_where_nothing_is_known_yet(client, cluster):
    node = factories.make_node(cluster, state=NodeState.DEPLOYING, external_fqdn="")

    body = client.get(node_url(node)).json()

    assert body["availability_zone"] is None
    assert (body["public_ip"], body["last_seen"], body["deployed_datetime"], body["tunnel"]) == (None,) * 4
    assert body["state"] == "Deploying"
    for attribute, json_type in ATTRIBUTE_TYPES.items():
        assert isinstance(body[attribute], json_type), attribute


def test_nickname_defaults_to_the_external_fqdn_and_a_set_one_wins(client, cluster):
    plain = factories.make_node(cluster, external_fqdn="a.node.test")
    named = factories.make_node(cluster, external_fqdn="b.node.test", nickname="db primary")

    assert client.get(node_url(plain)).json()["nickname"] == "a.node.test"
    assert client.get(node_url(named)).json()["nickname"] == "db primary"


def test_list_renders_each_node_like_its_detail(client, cluster):
    nodes = [factories.make_node(cluster, state=state) for state in (NodeState.DEPLOYED, NodeState.TERMINATED)]

    response = client.get(LIST_URL)

    assert response.status_code == 200
    objects = response.json()["objects"]
    assert {item["uuid"] for item in objects} == {str(node.uuid) for node in nodes}
    for item in objects:
        assert item == client.get(item["resource_uri"]).json()
        assert set(ATTRIBUTE_TYPES) <= set(item)
        assert item["resource_uri"].endswith("/")
        for field in ("deployed_datetime", "destroyed_datetime", "last_seen"):
            assert_rfc2822_or_none(item[field])


def test_unknown_node_is_a_json_404(client):
    assert_error(client.get("/api/v1/node/fc1a5bb9-17f5-4819-b667-8c7cd819e949/"), 404)


# --- PATCH --------------------------------------------------------------------------------------------------------


def test_patch_nickname_and_tags(client, node):
    response = client.patch(node_url(node), {"nickname": "dev node", "tags": [{"name": "tag-1"}]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["nickname"] == "dev node"
    assert response.json()["tags"] == [{"name": "tag-1"}]
    node.refresh_from_db()
    assert (node.nickname, node.tags) == ("dev node", ["tag-1"])
    action = header_action(response)
    assert (action.action, action.state, action.method) == ("Node Update", ActionState.SUCCESS, "PATCH")
    assert action.object_uri == node_url(node)
    assert action.node == node
    assert action.node_cluster == node.node_cluster


def test_patch_tags_replaces_the_node_list_only(client, cluster, node):
    response = client.patch(node_url(node), {"tags": ["a", "b"]}, format="json")

    assert response.status_code == 200
    node.refresh_from_db()
    cluster.refresh_from_db()
    assert node.tags == ["a", "b"]
    assert cluster.tags == ["web"]


@pytest.mark.parametrize("field", ["colour", "state", "uuid", "external_fqdn", "public_ip", "node_cluster"])
def test_patch_refuses_unknown_or_read_only_fields_by_name(client, node, field):
    before = node_snapshot(node)

    response = client.patch(node_url(node), {field: "x", "nickname": "n"}, format="json")

    body = assert_error(response, 400)
    assert list(body["errors"]) == [field]
    assert field in body["error"]
    assert node_snapshot(node) == before


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": ""},
        {"nickname": "x" * 256},
        {"nickname": "a\u0000b"},
        {"tags": [""]},
        {"tags": ["a\u0000b"]},
        {"tags": "web"},
        {"tags": [{"label": "x"}]},
        {"tags": [7]},
    ],
)
def test_patch_refuses_bad_values(client, node, body):
    before = node_snapshot(node)

    assert_error(client.patch(node_url(node), body, format="json"), 400)

    assert node_snapshot(node) == before


def test_patch_a_terminated_node_is_a_conflict(client, cluster):
    node = factories.make_node(cluster, state=NodeState.TERMINATED)
    before = node_snapshot(node)

    body = assert_error(client.patch(node_url(node), {"nickname": "late"}, format="json"), 409)

    assert "'Terminated'" in body["error"]
    assert node_snapshot(node) == before


# --- DELETE -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(NODE_ALLOWED[NodeOperation.TERMINATE]))
def test_delete_terminates_the_node_and_lowers_its_cluster_target(
    client, cluster, state, django_capture_on_commit_callbacks
):
    node = factories.make_node(cluster, state=state)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.delete(node_url(node))

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "Terminating"
    node.refresh_from_db()
    cluster.refresh_from_db()
    assert node.state == NodeState.TERMINATING
    assert cluster.target_num_nodes == 2
    assert cluster.state == NodeClusterState.SCALING
    action = header_action(response)
    assert (action.action, action.state, action.method) == ("Node Terminate", ActionState.IN_PROGRESS, "DELETE")
    assert (action.node, action.object_uri) == (node, node_url(node))
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


@pytest.mark.parametrize("state", sorted(set(NodeState) - NODE_ALLOWED[NodeOperation.TERMINATE]))
def test_delete_in_other_states_is_a_conflict(client, cluster, state):
    node = factories.make_node(cluster, state=state)
    before = node_snapshot(node)

    body = assert_error(client.delete(node_url(node)), 409)

    assert f"'{state}'" in body["error"]
    assert node_snapshot(node) == before


# --- health-check and docker-upgrade ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(NODE_ALLOWED[NodeOperation.HEALTH_CHECK]))
def test_health_check_hands_the_node_to_the_engine(client, cluster, state, django_capture_on_commit_callbacks):
    node = factories.make_node(cluster, state=state)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(node_url(node, "health-check/"))

    assert response.status_code == 202, response.content
    action = header_action(response)
    assert (action.action, action.state, action.node) == ("Node Health Check", ActionState.IN_PROGRESS, node)
    node.refresh_from_db()
    assert node.state == state
    assert hand_offs(callbacks) == [(HEALTH_TASK, [str(node.uuid), str(action.uuid)])]


@pytest.mark.parametrize("state", sorted(set(NodeState) - NODE_ALLOWED[NodeOperation.HEALTH_CHECK]))
def test_health_check_in_other_states_is_a_conflict(client, cluster, state, django_capture_on_commit_callbacks):
    node = factories.make_node(cluster, state=state)
    before = node_snapshot(node)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        body = assert_error(client.post(node_url(node, "health-check/")), 409)

    assert f"'{state}'" in body["error"]
    assert node_snapshot(node) == before
    assert callbacks == []


def test_docker_upgrade_puts_a_deployed_node_in_upgrading(client, cluster, node, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(node_url(node, "docker-upgrade/"))

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "Upgrading"
    node.refresh_from_db()
    assert node.state == NodeState.UPGRADING
    action = header_action(response)
    assert (action.action, action.state, action.node) == ("Node Docker Upgrade", ActionState.IN_PROGRESS, node)
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


def test_docker_upgrade_is_a_conflict_where_the_provider_cannot_do_it(client, user, settings):
    settings.SIMULATE_PROVIDERS = False
    cluster = factories.make_cluster(user, provider="aws", region_name="us-east-1", type_name="t2.micro")
    node = factories.make_node(cluster)
    before = node_snapshot(node)

    body = assert_error(client.post(node_url(node, "docker-upgrade/")), 409)

    assert "'aws'" in body["error"]
    assert node_snapshot(node) == before


# --- the whole state table ----------------------------------------------------------------------------------------


def _perform(client, node: Node, operation: NodeOperation):
    if operation == NodeOperation.TERMINATE:
        return client.delete(node_url(node))
    return client.post(node_url(node, f"{operation}/"))


_STATE_AFTER = {
    NodeOperation.TERMINATE: NodeState.TERMINATING,
    NodeOperation.DOCKER_UPGRADE: NodeState.UPGRADING,
    NodeOperation.HEALTH_CHECK: None,  # the engine decides later; the request leaves the state as it is
}


@pytest.mark.parametrize("operation", list(NodeOperation))
@pytest.mark.parametrize("state", list(NodeState))
def test_state_table(client, cluster, state, operation):
    node = factories.make_node(cluster, state=state)
    before = node_snapshot(node)

    response = _perform(client, node, operation)

    node.refresh_from_db()
    if state in NODE_ALLOWED[operation]:
        assert response.status_code == 202, response.content
        assert node.state == (_STATE_AFTER[operation] or state)
        assert Action.objects.filter(node=node).count() == before["action_count"] + 1
    else:
        body = assert_error(response, 409)
        assert f"'{state}'" in body["error"]
        assert node_snapshot(node) == before
