"""`/api/v1/nodecluster/`: create, list, get, PATCH (scale, tags, nickname), DELETE, deploy, docker-upgrade."""

import datetime
import json

import pytest
from django.conf import settings

from nodeclusters.choices import (
    NODE_CLUSTER_ALLOWED,
    ActionState,
    NodeClusterOperation,
    NodeClusterState,
    NodeState,
)
from nodeclusters.models import Action, Node, NodeCluster, NodeType, Region
from tests import factories
from tests.api.helpers import (
    ACTION_HEADER,
    RECONCILE_TASK,
    assert_error,
    assert_rfc2822_or_none,
    cluster_snapshot,
    cluster_url,
    hand_offs,
    header_action,
    set_cluster_state,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/nodecluster/"
DO_REGION = "/api/v1/region/digitalocean/lon1/"
DO_TYPE = "/api/v1/nodetype/digitalocean/1gb/"
AWS_REGION = "/api/v1/region/aws/us-east-1/"
AWS_TYPE = "/api/v1/nodetype/aws/t2.micro/"
AWS_OPTIONS = {
    "vpc": {"id": "vpc-aa1c70d4", "subnets": ["subnet-aaa7d94f", "subnet-aa15fa64"], "security_groups": ["sg-1"]},
    "iam": {"instance_profile_name": "my_instance_profile"},
}
ALL_STATES = list(NodeClusterState)

#: nodecluster.md's attributes and the JSON types each must have.
ATTRIBUTE_TYPES = {
    "uuid": str,
    "resource_uri": str,
    "name": str,
    "state": str,
    "node_type": str,
    "disk": int,
    "nodes": list,
    "region": str,
    "target_num_nodes": int,
    "current_num_nodes": int,
    "deployed_datetime": (str, type(None)),
    "destroyed_datetime": (str, type(None)),
    "tags": list,
    "provider_options": dict,
    "nickname": str,
}


def create_body(**overrides) -> dict:
    body = {"name": "my_cluster", "region": DO_REGION, "node_type": DO_TYPE}
    body.update(overrides)
    return body


@pytest.fixture
def cluster(user, catalog) -> NodeCluster:
    return factories.make_cluster(user, name="web")


def deployed_cluster(user, *, nodes: int = 0, **options) -> NodeCluster:
    """A cluster the engine has finished deploying: `Deployed`, with `nodes` deployed nodes."""
    cluster = factories.make_cluster(user, target_num_nodes=nodes, **options)
    for index in range(nodes):
        factories.make_node(cluster, external_fqdn=f"n{index}.node.test")
    return set_cluster_state(cluster, NodeClusterState.DEPLOYED)


# --- create -----------------------------------------------------------------------------------------------------


def test_create_applies_the_documented_defaults_and_records_a_create_action(client, user):
    response = client.post(LIST_URL, create_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    cluster = NodeCluster.objects.get(uuid=body["uuid"])
    assert cluster.owner == user
    assert (cluster.state, cluster.target_num_nodes, cluster.disk) == (NodeClusterState.INIT, 1, 60)
    assert (cluster.name, cluster.nickname, cluster.tags, cluster.provider_options) == (
        "my_cluster",
        "my_cluster",
        [],
        {},
    )
    assert (cluster.region.name, cluster.node_type.name) == ("lon1", "1gb")
    assert body["state"] == "Init"
    assert body["target_num_nodes"] == 1
    assert body["disk"] == 60
    assert body["nickname"] == "my_cluster"
    assert body["tags"] == []
    assert body["provider_options"] == {}
    assert body["nodes"] == []
    assert body["current_num_nodes"] == 0
    assert body["deployed_datetime"] is None
    assert body["resource_uri"] == f"/api/v1/nodecluster/{cluster.uuid}/"

    action = header_action(response)
    assert response[ACTION_HEADER] == f"/api/v1/action/{action.uuid}/"
    assert action.action == "Node Cluster Create"
    assert action.state == ActionState.SUCCESS
    assert action.end_date is not None
    assert action.object_uri == body["resource_uri"]
    assert (action.method, action.path, action.owner) == ("POST", LIST_URL, user)
    assert action.node_cluster == cluster
    assert Action.objects.count() == 1


def test_create_stores_every_optional_field(client):
    body = create_body(nickname="my test cluster", target_num_nodes=3, disk=100, tags=[{"name": "a"}, "b"])

    response = client.post(LIST_URL, body, format="json")

    assert response.status_code == 201, response.content
    cluster = NodeCluster.objects.get(uuid=response.json()["uuid"])
    assert (cluster.nickname, cluster.target_num_nodes, cluster.disk, cluster.tags) == (
        "my test cluster",
        3,
        100,
        ["a", "b"],
    )
    assert response.json()["tags"] == [{"name": "a"}, {"name": "b"}]


def test_create_requires_name_node_type_and_region(client):
    response = client.post(LIST_URL, {}, format="json")

    body = assert_error(response, 400)
    assert {"name", "node_type", "region"} <= set(body["errors"])
    for field in ("name", "node_type", "region"):
        assert field in body["error"]
    assert not NodeCluster.objects.exists()
    assert not Action.objects.exists()


def test_create_refuses_a_node_type_not_offered_in_the_region_and_names_the_offered_ones(client):
    factories.node_type("digitalocean", "1gb").regions.remove(factories.region("digitalocean", "lon1"))

    response = client.post(LIST_URL, create_body(), format="json")

    body = assert_error(response, 400)
    assert "/api/v1/nodetype/digitalocean/1gb/ is not offered" in body["error"]
    assert "/api/v1/nodetype/digitalocean/2gb/" in body["error"]
    assert "/api/v1/nodetype/digitalocean/64gb/" in body["error"]
    assert not NodeCluster.objects.exists()


def test_create_refuses_a_node_type_and_region_of_different_providers(client):
    response = client.post(LIST_URL, create_body(node_type=AWS_TYPE), format="json")

    body = assert_error(response, 400)
    assert "'aws'" in body["error"]
    assert "'digitalocean'" in body["error"]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("region", "/api/v1/region/digitalocean/mars1/"),
        ("region", "/api/v1/region/nocloud/lon1/"),
        ("node_type", "/api/v1/nodetype/digitalocean/huge/"),
    ],
)
def test_create_refuses_an_unknown_catalog_uri(client, field, value):
    response = client.post(LIST_URL, create_body(**{field: value}), format="json")

    body = assert_error(response, 400)
    assert field in body["errors"]
    assert value in body["error"]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("region", "lon1"),
        ("region", DO_TYPE),
        ("region", "/api/v1/region/digitalocean/"),
        ("region", 42),
        ("region", None),
        ("region", ["/api/v1/region/digitalocean/lon1/"]),
        ("node_type", "/api/v1/nodetype/digitalocean/1gb/extra/"),
        ("node_type", ""),
    ],
)
def test_create_refuses_a_malformed_uri(client, field, value):
    response = client.post(LIST_URL, create_body(**{field: value}), format="json")

    body = assert_error(response, 400)
    assert field in body["errors"]
    assert not NodeCluster.objects.exists()


def test_create_accepts_full_urls_for_catalog_references(client):
    body = create_body(
        region="http://testserver/api/v1/region/digitalocean/ams2/",
        node_type="https://dashboard.example.com/api/v1/nodetype/digitalocean/2gb",
    )

    response = client.post(LIST_URL, body, format="json")

    assert response.status_code == 201, response.content
    cluster = NodeCluster.objects.get(uuid=response.json()["uuid"])
    assert (cluster.region.name, cluster.node_type.name) == ("ams2", "2gb")
    assert response.json()["region"] == "/api/v1/region/digitalocean/ams2/"
    assert response.json()["node_type"] == "/api/v1/nodetype/digitalocean/2gb/"


@pytest.mark.parametrize(
    "options",
    [AWS_OPTIONS, {"vpc": {"id": "vpc-1"}}, {"iam": {"instance_profile_name": "profile"}}, {}],
    ids=["vpc-and-iam", "vpc-id-only", "iam-only", "empty"],
)
def test_create_accepts_aws_provider_options(client, options):
    response = client.post(
        LIST_URL, create_body(region=AWS_REGION, node_type=AWS_TYPE, provider_options=options), format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["provider_options"] == options
    assert NodeCluster.objects.get(uuid=response.json()["uuid"]).provider_options == options


@pytest.mark.parametrize(
    ("provider", "options", "named"),
    [
        ("digitalocean", {"vpc": {"id": "vpc-1"}}, "digitalocean"),
        ("aws", {"vpc": {"id": "vpc-1"}, "spot": True}, "spot"),
        ("aws", {"vpc": {"id": "vpc-1", "cidr": "10.0.0.0/16"}}, "cidr"),
        ("aws", {"iam": {"role": "admin"}}, "instance_profile_name"),
        ("aws", {"vpc": {"subnets": ["subnet-1"]}}, "vpc.id"),
        ("aws", {"vpc": {"id": ""}}, "vpc.id"),
        ("aws", {"vpc": {"id": "vpc-1", "subnets": "subnet-1"}}, "vpc.subnets"),
        ("aws", {"vpc": "vpc-1"}, "vpc"),
        ("aws", ["vpc"], "provider_options"),
    ],
)
def test_create_refuses_bad_provider_options(client, provider, options, named):
    region, node_type = (DO_REGION, DO_TYPE) if provider == "digitalocean" else (AWS_REGION, AWS_TYPE)

    response = client.post(
        LIST_URL, create_body(region=region, node_type=node_type, provider_options=options), format="json"
    )

    body = assert_error(response, 400)
    assert named in body["error"]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize(
    "make_unavailable",
    [
        lambda: Region.objects.filter(provider__name="digitalocean", name="lon1").update(available=False),
        lambda: NodeType.objects.filter(provider__name="digitalocean", name="1gb").update(available=False),
    ],
    ids=["region", "node-type"],
)
def test_create_refuses_an_unavailable_region_or_node_type(client, make_unavailable):
    make_unavailable()

    response = client.post(LIST_URL, create_body(), format="json")

    body = assert_error(response, 400)
    assert "/api/v1/" in body["error"]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize("field", ["colour", "state", "uuid", "current_num_nodes"])
def test_create_refuses_unknown_or_read_only_fields_by_name(client, field):
    response = client.post(LIST_URL, create_body(**{field: "x"}), format="json")

    body = assert_error(response, 400)
    assert list(body["errors"]) == [field]
    assert field in body["error"]
    assert not NodeCluster.objects.exists()


# --- representation -----------------------------------------------------------------------------------------------


def test_detail_has_every_documented_attribute_with_exact_values_and_types(client, user):
    cluster = factories.make_cluster(
        user,
        provider="aws",
        region_name="us-east-1",
        type_name="t2.micro",
        name="TestCluster",
        nickname="my test cluster",
        target_num_nodes=2,
        tags=["tag_one", "tag-two", "tagthree3"],
        provider_options=AWS_OPTIONS,
    )
    deployed_at = datetime.datetime(
        2014, 9, 16, 19, 1, 15, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    set_cluster_state(cluster, NodeClusterState.PARTLY_DEPLOYED, deployed_datetime=deployed_at)
    nodes = [
        factories.make_node(cluster, state=state)
        for state in (NodeState.DEPLOYED, NodeState.UNREACHABLE, NodeState.DEPLOYING, NodeState.TERMINATED)
    ]

    response = client.get(cluster_url(cluster))

    assert response.status_code == 200
    body = response.json()
    assert body == body | {
        "uuid": str(cluster.uuid),
        "resource_uri": f"/api/v1/nodecluster/{cluster.uuid}/",
        "name": "TestCluster",
        "nickname": "my test cluster",
        "state": "Partly deployed",
        "node_type": AWS_TYPE,
        "region": AWS_REGION,
        "disk": 60,
        "nodes": [f"/api/v1/node/{node.uuid}/" for node in nodes],
        "target_num_nodes": 2,
        "current_num_nodes": 2,
        "deployed_datetime": "Tue, 16 Sep 2014 17:01:15 +0000",
        "destroyed_datetime": None,
        "tags": [{"name": "tag_one"}, {"name": "tag-two"}, {"name": "tagthree3"}],
        "provider_options": AWS_OPTIONS,
    }
    for attribute, json_type in ATTRIBUTE_TYPES.items():
        assert isinstance(body[attribute], json_type), attribute
    assert not isinstance(body["disk"], bool)


def test_nodes_are_referenced_oldest_first_and_actions_newest_first(client, user):
    cluster = factories.make_cluster(user)
    Action.objects.filter(node_cluster=cluster).delete()
    base = datetime.datetime(2015, 3, 1, tzinfo=datetime.UTC)
    nodes = sorted((factories.make_node(cluster) for _ in range(5)), key=lambda node: str(node.uuid), reverse=True)
    actions = sorted(
        (
            Action.objects.create(owner=user, action="Node Cluster Update", node_cluster=cluster, start_date=base)
            for _ in range(4)
        ),
        key=lambda action: str(action.uuid),
    )
    # Times run against uuid order, so ordering by uuid cannot pass for either.
    for index, node in enumerate(nodes):
        Node.objects.filter(pk=node.pk).update(created_at=base + datetime.timedelta(minutes=index))
    for index, action in enumerate(actions):
        Action.objects.filter(pk=action.pk).update(start_date=base - datetime.timedelta(minutes=index))

    detail = client.get(cluster_url(cluster)).json()
    [listed] = client.get(LIST_URL).json()["objects"]

    for body in (detail, listed):
        assert body["nodes"] == [f"/api/v1/node/{node.uuid}/" for node in nodes]
        assert body["actions"] == [f"/api/v1/action/{action.uuid}/" for action in actions]


def test_list_renders_each_cluster_like_its_detail(client, user):
    first = factories.make_cluster(user, name="first")
    second = deployed_cluster(user, nodes=2, name="second")

    response = client.get(LIST_URL)

    assert response.status_code == 200
    objects = {item["uuid"]: item for item in response.json()["objects"]}
    assert set(objects) == {str(first.uuid), str(second.uuid)}
    for cluster in (first, second):
        item = objects[str(cluster.uuid)]
        assert item == client.get(cluster_url(cluster)).json()
        assert set(ATTRIBUTE_TYPES) <= set(item)
        assert item["resource_uri"].endswith("/")
        assert_rfc2822_or_none(item["deployed_datetime"])
        assert_rfc2822_or_none(item["destroyed_datetime"])
    assert len(objects[str(second.uuid)]["nodes"]) == 2
    assert response.json()["meta"]["total_count"] == 2


def test_list_is_newest_first(client, user):
    clusters = sorted((factories.make_cluster(user, name=f"c{index}") for index in range(8)), key=lambda c: c.uuid)
    # Creation times run opposite to UUID order, so an order by UUID cannot pass for newest first.
    start = datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC)
    for index, cluster in enumerate(clusters):
        NodeCluster.objects.filter(pk=cluster.pk).update(created_at=start + datetime.timedelta(days=index))

    response = client.get(LIST_URL)

    assert [item["uuid"] for item in response.json()["objects"]] == [str(cluster.uuid) for cluster in clusters[::-1]]


def test_terminated_clusters_stay_listed_with_their_destroyed_datetime(client, user, cluster):
    destroyed_at = datetime.datetime(2015, 3, 1, 8, 5, 9, tzinfo=datetime.UTC)
    set_cluster_state(cluster, NodeClusterState.TERMINATED, target_num_nodes=0, destroyed_datetime=destroyed_at)

    response = client.get(LIST_URL)

    assert response.status_code == 200
    (item,) = response.json()["objects"]
    assert item["uuid"] == str(cluster.uuid)
    assert item["state"] == "Terminated"
    assert item["destroyed_datetime"] == "Sun, 01 Mar 2015 08:05:09 +0000"


def test_unknown_cluster_is_a_json_404(client):
    assert_error(client.get("/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/"), 404)


# --- deploy -------------------------------------------------------------------------------------------------------


def test_deploy_from_init_starts_deploying_and_hands_off_to_the_engine(
    client, cluster, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(cluster_url(cluster, "deploy/"))

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "Deploying"
    cluster.refresh_from_db()
    assert cluster.state == NodeClusterState.DEPLOYING
    action = header_action(response)
    assert (action.action, action.state, action.end_date) == ("Node Cluster Deploy", ActionState.IN_PROGRESS, None)
    assert action.can_be_canceled
    assert action.target_num_nodes == 1
    assert action.object_uri == cluster_url(cluster)
    assert cluster.current_action == action
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


@pytest.mark.parametrize("state", [state for state in ALL_STATES if state != NodeClusterState.INIT])
def test_deploy_from_any_other_state_is_a_conflict_naming_the_state_and_allowed_operations(
    client, cluster, state, django_capture_on_commit_callbacks
):
    set_cluster_state(cluster, state)
    before = cluster_snapshot(cluster)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(cluster_url(cluster, "deploy/"))

    body = assert_error(response, 409)
    assert f"'{state}'" in body["error"]
    allowed = [operation for operation, states in NODE_CLUSTER_ALLOWED.items() if state in states]
    for operation in allowed:
        assert f"'{operation}'" in body["error"]
    if not allowed:
        assert "none" in body["error"]
    assert cluster_snapshot(cluster) == before
    assert callbacks == []


# --- PATCH --------------------------------------------------------------------------------------------------------


def test_patch_target_before_deploy_only_changes_the_target(client, cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["target_num_nodes"] == 3
    assert response.json()["state"] == "Init"
    cluster.refresh_from_db()
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.INIT, 3)
    action = header_action(response)
    assert (action.action, action.state, action.method) == ("Node Cluster Update", ActionState.SUCCESS, "PATCH")
    assert callbacks == []


def test_patch_target_on_a_deployed_cluster_scales_it(client, user, django_capture_on_commit_callbacks):
    cluster = deployed_cluster(user, nodes=1)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "Scaling"
    cluster.refresh_from_db()
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.SCALING, 3)
    action = header_action(response)
    assert (action.action, action.state, action.target_num_nodes) == ("Node Cluster Scale", ActionState.IN_PROGRESS, 3)
    assert action.can_be_canceled
    assert cluster.current_action == action
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


def _busy_cluster(client, user, state: str) -> tuple[NodeCluster, Action]:
    """A cluster `Deploying` (deploy action open) or `Scaling` (scale action open), and that open action."""
    cluster = factories.deploy(factories.make_cluster(user))
    if state == NodeClusterState.SCALING:
        set_cluster_state(cluster, NodeClusterState.DEPLOYED)
        assert client.patch(cluster_url(cluster), {"target_num_nodes": 2}, format="json").status_code == 202
    cluster.refresh_from_db()
    assert cluster.state == state
    return cluster, cluster.current_action


@pytest.mark.parametrize("state", [NodeClusterState.DEPLOYING, NodeClusterState.SCALING])
def test_patch_target_while_busy_supersedes_the_open_action_and_the_latest_target_wins(client, user, state):
    cluster, previous = _busy_cluster(client, user, state)

    first = client.patch(cluster_url(cluster), {"target_num_nodes": 5}, format="json")
    second = client.patch(cluster_url(cluster), {"target_num_nodes": 4}, format="json")

    assert (first.status_code, second.status_code) == (202, 202)
    cluster.refresh_from_db()
    assert (cluster.state, cluster.target_num_nodes) == (state, 4)
    assert second.json()["target_num_nodes"] == 4
    first_action, second_action = header_action(first), header_action(second)
    previous.refresh_from_db()
    first_action.refresh_from_db()
    for superseded, successor in ((previous, first_action), (first_action, second_action)):
        assert superseded.state == ActionState.CANCELED
        assert superseded.end_date is not None
        assert f"Superseded by action /api/v1/action/{successor.uuid}/" in superseded.logs
    assert second_action.state == ActionState.IN_PROGRESS
    assert second_action.target_num_nodes == 4
    assert cluster.current_action == second_action


def test_patch_tags_replaces_the_list_on_the_cluster_and_its_live_nodes(client, user):
    cluster = deployed_cluster(user, nodes=0, tags=["old", "older"])
    live = factories.make_node(cluster)
    gone = factories.make_node(cluster, state=NodeState.TERMINATED)

    response = client.patch(cluster_url(cluster), {"tags": [{"name": "tag-1"}, {"name": "tag-2"}]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["tags"] == [{"name": "tag-1"}, {"name": "tag-2"}]
    cluster.refresh_from_db()
    live.refresh_from_db()
    gone.refresh_from_db()
    assert cluster.tags == ["tag-1", "tag-2"]
    assert live.tags == ["tag-1", "tag-2"]
    assert gone.tags == ["old", "older"]
    assert cluster.state == NodeClusterState.DEPLOYED
    action = header_action(response)
    assert (action.action, action.state) == ("Node Cluster Update", ActionState.SUCCESS)


def test_patch_empty_tags_clears_them(client, user):
    cluster = factories.make_cluster(user, tags=["a"])

    response = client.patch(cluster_url(cluster), {"tags": []}, format="json")

    assert response.status_code == 200
    assert response.json()["tags"] == []
    cluster.refresh_from_db()
    assert cluster.tags == []


# A regression test: these once raised KeyError (a 500) formatting TagListField's "invalid" message.
@pytest.mark.parametrize("tags", ["web", [{"label": "web"}], [7], {"name": "web"}])
def test_create_and_patch_refuse_badly_shaped_tags(client, cluster, tags):
    before = cluster_snapshot(cluster)

    create = client.post(LIST_URL, create_body(tags=tags), format="json")
    patch = client.patch(cluster_url(cluster), {"tags": tags}, format="json")

    assert "tags" in assert_error(create, 400)["errors"]
    assert "tags" in assert_error(patch, 400)["errors"]
    assert NodeCluster.objects.count() == 1
    assert cluster_snapshot(cluster) == before


@pytest.mark.parametrize("tags", [[""], ["a\u0000b"], ["x" * 129], ["t"] * 65])
def test_create_and_patch_refuse_bad_tag_names(client, cluster, tags):
    before = cluster_snapshot(cluster)

    create = client.post(LIST_URL, create_body(tags=tags), format="json")
    patch = client.patch(cluster_url(cluster), {"tags": tags}, format="json")

    assert "tags" in assert_error(create, 400)["errors"]
    assert "tags" in assert_error(patch, 400)["errors"]
    assert NodeCluster.objects.count() == 1
    assert cluster_snapshot(cluster) == before


@pytest.mark.parametrize("tags", [["a\u0007b"], ["line\u2028break"], ["\u202eevil"], [" "]])
def test_create_and_patch_refuse_tag_names_with_control_characters(client, cluster, tags):
    create = client.post(LIST_URL, create_body(tags=tags), format="json")
    patch = client.patch(cluster_url(cluster), {"tags": tags}, format="json")

    assert "tags" in assert_error(create, 400)["errors"]
    assert "tags" in assert_error(patch, 400)["errors"]


def test_create_takes_numbers_as_text_and_trims_names(client):
    """Tutum's CLI sends `--disk` as text; the document states numbers as an integer or its decimal text."""
    body = create_body(name="  web  ", disk="100", target_num_nodes="2", tags=[{"name": " café\u00a0 "}])

    response = client.post(LIST_URL, body, format="json")

    assert response.status_code == 201, response.content
    cluster = NodeCluster.objects.get(uuid=response.json()["uuid"])
    assert (cluster.name, cluster.disk, cluster.target_num_nodes, cluster.tags) == ("web", 100, 2, ["café"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("disk", "60.0"), ("disk", 60.5), ("disk", True), ("disk", " 60"), ("target_num_nodes", "007"), ("name", " ")],
)
def test_create_refuses_numbers_and_names_the_document_does_not_admit(client, field, value):
    body = assert_error(client.post(LIST_URL, create_body(**{field: value}), format="json"), 400)

    assert list(body["errors"]) == [field]
    assert not NodeCluster.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("provider_options", '{"vpc": {"id": "\\ud800"}}'), ("tags", '["\\udc00"]'), ("name", '"a\\ud800"')],
)
def test_create_refuses_unpaired_surrogates(client, field, value):
    """JSON can escape half a surrogate pair, which no database stores: a 400 (on PostgreSQL, once a 500)."""
    body = {**create_body(region=AWS_REGION, node_type=AWS_TYPE), field: "PLACEHOLDER"}
    raw = json.dumps(body).replace('"PLACEHOLDER"', value)

    response = client.generic("POST", LIST_URL, raw, content_type="application/json")

    assert list(assert_error(response, 400)["errors"]) == [field]
    assert not NodeCluster.objects.exists()


def test_an_unknown_field_named_with_half_a_surrogate_pair_is_a_400(client):
    raw = json.dumps(create_body()).replace("{", '{"\\ud800x": 1, ', 1)

    response = client.generic("POST", LIST_URL, raw, content_type="application/json")

    assert list(assert_error(response, 400)["errors"]) == ["\\ud800x"]  # named as sent, escaped


def test_patch_nickname(client, cluster):
    response = client.patch(cluster_url(cluster), {"nickname": "production web"}, format="json")

    assert response.status_code == 200
    assert response.json()["nickname"] == "production web"
    assert response.json()["name"] == "web"
    cluster.refresh_from_db()
    assert (cluster.nickname, cluster.name) == ("production web", "web")
    assert "production web" in header_action(response).logs


@pytest.mark.parametrize("state", [NodeClusterState.TERMINATING, NodeClusterState.TERMINATED])
def test_patch_target_on_a_terminating_or_terminated_cluster_is_a_conflict(client, cluster, state):
    set_cluster_state(cluster, state, target_num_nodes=0)
    before = cluster_snapshot(cluster)

    response = client.patch(cluster_url(cluster), {"target_num_nodes": 2, "tags": ["x"]}, format="json")

    body = assert_error(response, 409)
    assert f"'{state}'" in body["error"]
    assert cluster_snapshot(cluster) == before


@pytest.mark.parametrize(
    "target",
    [-1, settings.MAX_NODES_PER_CLUSTER + 1, "three", 2**63, 1.5, None, [2], {"n": 2}],
    ids=["negative", "above-max", "string", "2**63", "float", "null", "list", "object"],
)
def test_patch_refuses_a_bad_target(client, user, target):
    cluster = deployed_cluster(user, nodes=1)
    before = cluster_snapshot(cluster)

    response = client.patch(cluster_url(cluster), {"target_num_nodes": target}, format="json")

    body = assert_error(response, 400)
    assert list(body["errors"]) == ["target_num_nodes"]
    assert cluster_snapshot(cluster) == before


def test_patch_target_up_to_the_maximum_is_accepted(client, cluster):
    response = client.patch(cluster_url(cluster), {"target_num_nodes": settings.MAX_NODES_PER_CLUSTER}, format="json")

    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.target_num_nodes == settings.MAX_NODES_PER_CLUSTER


@pytest.mark.parametrize("field", ["colour", "state", "uuid", "name", "region", "current_num_nodes", "nodes"])
def test_patch_refuses_unknown_or_read_only_fields_by_name(client, cluster, field):
    before = cluster_snapshot(cluster)

    response = client.patch(cluster_url(cluster), {field: "Deployed", "nickname": "x"}, format="json")

    body = assert_error(response, 400)
    assert list(body["errors"]) == [field]
    assert field in body["error"]
    assert cluster_snapshot(cluster) == before


# --- DELETE -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        NodeClusterState.INIT,
        NodeClusterState.DEPLOYED,
        NodeClusterState.PARTLY_DEPLOYED,
        NodeClusterState.EMPTY_CLUSTER,
        NodeClusterState.DEPLOYING,
        NodeClusterState.SCALING,
    ],
)
def test_delete_starts_terminating_with_target_zero(client, user, state, django_capture_on_commit_callbacks):
    cluster = set_cluster_state(factories.make_cluster(user, target_num_nodes=3), state)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.delete(cluster_url(cluster))

    assert response.status_code == 202, response.content
    assert (response.json()["state"], response.json()["target_num_nodes"]) == ("Terminating", 0)
    cluster.refresh_from_db()
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.TERMINATING, 0)
    action = header_action(response)
    assert (action.action, action.state, action.method) == ("Node Cluster Terminate", ActionState.IN_PROGRESS, "DELETE")
    assert not action.can_be_canceled
    assert cluster.current_action == action
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


@pytest.mark.parametrize("state", [NodeClusterState.TERMINATING, NodeClusterState.TERMINATED])
def test_delete_twice_is_a_conflict(client, cluster, state):
    set_cluster_state(cluster, state, target_num_nodes=0)
    before = cluster_snapshot(cluster)

    body = assert_error(client.delete(cluster_url(cluster)), 409)

    assert f"'{state}'" in body["error"]
    assert cluster_snapshot(cluster) == before


# --- docker-upgrade -----------------------------------------------------------------------------------------------


def test_docker_upgrade_upgrades_the_deployed_nodes(client, user, django_capture_on_commit_callbacks):
    cluster = deployed_cluster(user, nodes=2)
    deploying = factories.make_node(cluster, state=NodeState.DEPLOYING)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(cluster_url(cluster, "docker-upgrade/"))

    assert response.status_code == 202, response.content
    states = dict(cluster.nodes.values_list("uuid", "state"))
    assert states.pop(deploying.uuid) == NodeState.DEPLOYING
    assert list(states.values()) == [NodeState.UPGRADING, NodeState.UPGRADING]
    action = header_action(response)
    assert (action.action, action.state) == ("Node Cluster Docker Upgrade", ActionState.IN_PROGRESS)
    assert "2 node(s) queued for upgrade" in action.logs
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


def test_docker_upgrade_is_a_conflict_where_the_provider_cannot_do_it(client, user, settings):
    settings.SIMULATE_PROVIDERS = False
    cluster = deployed_cluster(user, nodes=1, provider="aws", region_name="us-east-1", type_name="t2.micro")
    before = cluster_snapshot(cluster)

    body = assert_error(client.post(cluster_url(cluster, "docker-upgrade/")), 409)

    assert "'aws' does not support upgrading Docker" in body["error"]
    assert cluster_snapshot(cluster) == before


def test_docker_upgrade_before_deploy_is_a_conflict(client, cluster):
    before = cluster_snapshot(cluster)

    body = assert_error(client.post(cluster_url(cluster, "docker-upgrade/")), 409)

    assert "'Init'" in body["error"]
    assert cluster_snapshot(cluster) == before


# --- the whole state table ----------------------------------------------------------------------------------------


def _perform(client, cluster: NodeCluster, operation: NodeClusterOperation):
    if operation == NodeClusterOperation.DEPLOY:
        return client.post(cluster_url(cluster, "deploy/"))
    if operation == NodeClusterOperation.SCALE:
        return client.patch(cluster_url(cluster), {"target_num_nodes": cluster.target_num_nodes + 1}, format="json")
    if operation == NodeClusterOperation.TERMINATE:
        return client.delete(cluster_url(cluster))
    return client.post(cluster_url(cluster, "docker-upgrade/"))


def _expected_after(operation: NodeClusterOperation, state: str, target: int) -> tuple[str, int]:
    """The (state, target) an allowed operation leaves on the row."""
    if operation == NodeClusterOperation.DEPLOY:
        return NodeClusterState.DEPLOYING, target
    if operation == NodeClusterOperation.SCALE:
        settled = {NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED, NodeClusterState.EMPTY_CLUSTER}
        return (NodeClusterState.SCALING if state in settled else state), target + 1
    if operation == NodeClusterOperation.TERMINATE:
        return NodeClusterState.TERMINATING, 0
    return state, target


@pytest.mark.parametrize("operation", list(NodeClusterOperation))
@pytest.mark.parametrize("state", ALL_STATES)
def test_state_table(client, user, state, operation):
    cluster = set_cluster_state(factories.make_cluster(user, target_num_nodes=2), state)
    factories.make_node(cluster)
    before = cluster_snapshot(cluster)

    response = _perform(client, cluster, operation)

    cluster.refresh_from_db()
    if state in NODE_CLUSTER_ALLOWED[operation]:
        assert response.status_code in (200, 202), response.content
        assert (cluster.state, cluster.target_num_nodes) == _expected_after(operation, state, 2)
        assert Action.objects.filter(node_cluster=cluster).count() == before["action_count"] + 1
    else:
        body = assert_error(response, 409)
        assert f"'{state}'" in body["error"]
        assert cluster_snapshot(cluster) == before
