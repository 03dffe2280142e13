"""What Tutum's official clients (the `tutum` CLI 0.21.1, python-tutum 0.21.2, go-tutum) need from the REST API.

- The CLI looks an identifier up with `uuid__startswith=<identifier>` first, then `name=`: any text is a valid
  prefix query, and text no uuid starts with matches nothing.
- python-tutum copies every key of an action onto its Action object: a `logs` key would hide `Action.logs()`.
  The log is read at `/api/v1/action/<uuid>/logs/` instead.
- go-tutum, given a resource URI, requests `<uri>/`: repeated slashes are one, as Tutum's front end had it.
"""

import datetime

import pytest
from django.utils import timezone

from nodeclusters import services
from nodeclusters.choices import ActionState, NodeClusterState
from nodeclusters.models import Action, ActionLogLine, NodeCluster
from nodeclusters.services.actions import action_log
from tests import factories
from tests.api.helpers import action_url, assert_error, cluster_url, header_action, node_url

pytestmark = pytest.mark.django_db

CREATE_BODY = {
    "name": "my_cluster",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
}

# --- uuid__startswith -----------------------------------------------------------------------------------------------

# Two uuids sharing their first group, one apart, and another user's that shares the first two groups.
FIRST = "5516df0b-721e-4470-b350-741ff22e63a0"
SECOND = "5516df0b-7ddd-4470-b350-741ff22e63a1"
THIRD = "fc1a5bb9-17f5-4819-b667-8c7cd819e949"
NOT_YOURS = "5516df0b-721e-4470-b350-000000000000"
RESOURCES = ["nodecluster", "node", "action"]


def make_rows(resource: str, owner, uuid: str):
    """A row with a chosen uuid (services draw random ones), as a read needs it."""
    cluster_fields = {"owner": owner, "node_type": factories.node_type(), "region": factories.region()}
    if resource == "nodecluster":
        return NodeCluster.objects.create(uuid=uuid, name=f"c-{uuid[:4]}", **cluster_fields)
    if resource == "node":
        return factories.make_node(NodeCluster.objects.create(name="host", **cluster_fields), uuid=uuid)
    return Action.objects.create(
        uuid=uuid,
        owner=owner,
        action="Node Cluster Deploy",
        object_uri="/api/v1/nodecluster/5516df0b-721e-4470-b350-741ff22e63a0/",
        state=ActionState.SUCCESS,
        start_date=timezone.now(),
    )


@pytest.fixture
def rows(request, user, other_user, catalog):
    """The three uuids above as the user's rows of one resource, and another user's row sharing their prefix."""
    resource = request.param
    for uuid in (FIRST, SECOND, THIRD):
        make_rows(resource, user, uuid)
    make_rows(resource, other_user, NOT_YOURS)
    return f"/api/v1/{resource}/"


def found(client, url: str, prefix: str) -> set[str]:
    response = client.get(url, {"uuid__startswith": prefix})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["meta"]["total_count"] == len(body["objects"])
    return {item["uuid"] for item in body["objects"]}


@pytest.mark.parametrize("rows", RESOURCES, indirect=True)
@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("5516df0b", {FIRST, SECOND}),
        ("5516DF0B", {FIRST, SECOND}),
        ("5516df0b-", {FIRST, SECOND}),
        ("5516df0b-72", {FIRST}),
        ("5516df0b72", {FIRST}),  # dashes are optional, as in the URLs
        ("5516DF0B-7D", {SECOND}),
        ("5516df0b-7ddd-4470-b3", {SECOND}),
        (FIRST, {FIRST}),
        (FIRST.upper(), {FIRST}),
        (FIRST.replace("-", ""), {FIRST}),
        (" fc1a5bb9 ", {THIRD}),
        ("f", {THIRD}),
        ("", {FIRST, SECOND, THIRD}),  # empty: no filter
    ],
)
def test_uuid_prefix_finds_exactly_the_users_objects_it_starts(client, rows, prefix, expected):
    assert found(client, rows, prefix) == expected


@pytest.mark.parametrize("rows", RESOURCES, indirect=True)
@pytest.mark.parametrize(
    "text",
    [
        "my_cluster",
        "web",
        "xyz",
        "nodecluster",
        "5516-df0b",  # a dash where no uuid has one
        "5516df0b--72",
        "-5516",
        FIRST + "0",  # longer than a uuid
        FIRST.replace("-", "") + "0",
        "%",  # LIKE wildcards are text, not patterns
        "_",
        "5516df0b%",
        "a\x00b",  # never reaches the database
        "é",
    ],
)
def test_text_no_uuid_starts_with_is_an_empty_page_not_an_error(client, rows, text):
    response = client.get(rows, {"uuid__startswith": text})

    assert response.status_code == 200, response.content
    assert response.json()["objects"] == []
    assert response.json()["meta"]["total_count"] == 0


def test_cli_removes_a_node_cluster_named_by_its_name(client, user):
    """`tutum nodecluster rm my_cluster`: uuid prefix first (nothing), then the name, then DELETE."""
    uuid = client.post("/api/v1/nodecluster/", CREATE_BODY, format="json").json()["uuid"]
    factories.make_cluster(user, name="other")

    by_prefix = client.get("/api/v1/nodecluster/", {"uuid__startswith": "my_cluster"})
    by_name = client.get("/api/v1/nodecluster/", {"name": "my_cluster"})
    deleted = client.delete(f"/api/v1/nodecluster/{uuid}/")

    assert (by_prefix.status_code, by_prefix.json()["objects"]) == (200, [])
    assert [item["uuid"] for item in by_name.json()["objects"]] == [uuid]
    assert deleted.status_code == 202, deleted.content
    assert NodeCluster.objects.get(uuid=uuid).state == NodeClusterState.TERMINATING
    assert header_action(deleted).action == "Node Cluster Terminate"


def test_cli_finds_an_action_node_and_cluster_by_short_uuid(client, user):
    """`tutum action inspect <short uuid>` (and node, nodecluster): one object among several of the user's."""
    cluster = factories.deploy(factories.make_cluster(user, name="web"))
    factories.make_cluster(user, name="db")
    nodes = [factories.make_node(cluster) for _ in range(3)]
    actions = list(Action.objects.filter(owner=user))
    assert len(actions) == 3  # two creates and a deploy

    for url, objects in (("/api/v1/nodecluster/", [cluster]), ("/api/v1/node/", nodes), ("/api/v1/action/", actions)):
        for target in objects:
            short = str(target.uuid)[:8]
            assert found(client, url, short) == {str(target.uuid)}, (url, short)


# --- the action log -----------------------------------------------------------------------------------------------


@pytest.fixture
def logged_action(user, catalog):
    """A deploy action with a few more log lines, at known times."""
    cluster = factories.make_cluster(user, name="web")
    _, action = services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=factories.CONTEXT)
    for message in ("Node a: instance i-1 created", "Node a: instance i-1 running", "multi\nline"):
        action_log(action=action, message=message)
    start = datetime.datetime(2014, 9, 16, 17, 1, 15, 500000, tzinfo=datetime.UTC)
    for index, line in enumerate(action.log_lines.order_by("id")):
        ActionLogLine.objects.filter(pk=line.pk).update(created_at=start + datetime.timedelta(seconds=index))
    return action


def stored_lines(action) -> list[ActionLogLine]:
    return list(ActionLogLine.objects.filter(action=action).order_by("id"))


def test_action_json_has_no_logs_key_so_the_sdk_method_survives(client, logged_action):
    """python-tutum sets every key of the JSON as an attribute of its Action, whose `logs` is a method."""

    class SdkAction:
        def logs(self, tail, follow):
            return "streamed"

    detail = client.get(action_url(logged_action)).json()
    listed = client.get("/api/v1/action/").json()["objects"]
    sdk_action = SdkAction()
    for key, value in detail.items():
        setattr(sdk_action, key, value)

    assert "logs" not in detail
    assert all("logs" not in item for item in listed)
    assert sdk_action.logs(300, False) == "streamed"


def test_action_log_is_json_log_messages_by_default(client, logged_action):
    response = client.get(action_url(logged_action, "logs/"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    lines = stored_lines(logged_action)
    assert len(lines) == 4
    assert response.json() == {
        "objects": [
            {"type": "log", "log": line.message, "timestamp": 1410886875 + index} for index, line in enumerate(lines)
        ]
    }
    assert response.json()["objects"][-1]["log"] == "multi\nline"


@pytest.mark.parametrize(
    ("how", "query"),
    [({"HTTP_ACCEPT": "text/plain"}, {}), ({}, {"format": "text"}), ({"HTTP_ACCEPT": "text/plain, */*"}, {})],
    ids=["accept", "format", "accept-first"],
)
def test_action_log_is_plain_text_when_asked(client, logged_action, how, query):
    response = client.get(action_url(logged_action, "logs/"), query, **how)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "".join(line.render() for line in stored_lines(logged_action))
    assert response.content.decode().startswith("2014-09-16T17:01:15Z Deploying 1 node(s)")


@pytest.mark.parametrize(("tail", "count"), [(0, 0), (1, 1), (2, 2), (4, 4), (300, 4)])
def test_action_log_tail_keeps_the_last_lines_in_order(client, logged_action, tail, count):
    lines = stored_lines(logged_action)[4 - count :]

    as_json = client.get(action_url(logged_action, "logs/"), {"tail": tail}).json()["objects"]
    as_text = client.get(action_url(logged_action, "logs/"), {"tail": tail, "format": "text"}).content.decode()

    assert [item["log"] for item in as_json] == [line.message for line in lines]
    assert as_text == "".join(line.render() for line in lines)


@pytest.mark.parametrize("tail", ["-1", "abc", "1.5", str(2**31)])
@pytest.mark.parametrize("accept", ["application/json", "text/plain"])
def test_bad_tail_is_a_json_400_whatever_was_asked(client, logged_action, tail, accept):
    body = assert_error(client.get(action_url(logged_action, "logs/"), {"tail": tail}, HTTP_ACCEPT=accept), 400)

    assert "tail" in body["errors"]


@pytest.mark.parametrize("accept", ["application/json", "text/plain"])
def test_another_users_action_log_is_a_json_404(other_client, logged_action, accept):
    assert_error(other_client.get(action_url(logged_action, "logs/"), HTTP_ACCEPT=accept), 404)
    assert_error(other_client.get(action_url(logged_action, "logs/"), {"format": "text"}), 404)


def test_unknown_action_log_is_a_json_404_and_no_credentials_a_401(client, anonymous_client, logged_action):
    assert_error(client.get("/api/v1/action/6246c558-976c-4df6-ba60-eb1a344a17af/logs/"), 404)
    assert_error(anonymous_client.get(action_url(logged_action, "logs/"), HTTP_ACCEPT="text/plain"), 401)


def test_action_log_is_read_only(client, logged_action):
    response = client.post(action_url(logged_action, "logs/"))

    assert_error(response, 405)
    assert ActionLogLine.objects.filter(action=logged_action).count() == 4


def test_action_log_is_what_the_engine_appends(client, logged_action):
    action_log(action=logged_action, message="Node b: instance i-2 created")

    last = client.get(action_url(logged_action, "logs/"), {"tail": 1}).json()["objects"]

    assert [item["log"] for item in last] == ["Node b: instance i-2 created"]


# --- repeated slashes -----------------------------------------------------------------------------------------------


def go_tutum_path(resource_uri: str) -> str:
    """go-tutum's Get*(resource_uri): the URI minus `/api/v1/`, plus `/`, under the API root."""
    return "/api/v1/" + resource_uri[len("/api/v1/") :] + "/"


def test_go_tutum_gets_a_cluster_node_and_action_by_resource_uri(client, user):
    cluster = factories.deploy(factories.make_cluster(user, name="web"))
    node = factories.make_node(cluster)
    action = cluster.actions.first()

    for canonical in (cluster_url(cluster), node_url(node), action_url(action)):
        response = client.get(go_tutum_path(canonical))

        assert go_tutum_path(canonical).endswith("//")
        assert response.status_code == 200, (canonical, response.content[:300])
        assert response.json() == client.get(canonical).json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1//region//digitalocean//lon1//",
        "/api/v1/nodetype/digitalocean/1gb//",
        "/api/v1//provider/digitalocean///",
        "/api/v1//auth//",
    ],
)
def test_repeated_slashes_are_one_on_every_resource(client, path):
    response = client.get(path)

    assert response.status_code == 200, response.content[:300]


def test_a_leading_double_slash_is_merged_too(client, user):
    cluster = factories.make_cluster(user, name="web")

    # The test client would read `//api` as a host name; a server hands the path over as it came.
    response = client.get("/", PATH_INFO=f"//api/v1//nodecluster/{cluster.uuid}//")

    assert response.status_code == 200, response.content[:300]
    assert response.json()["uuid"] == str(cluster.uuid)


def test_writes_through_repeated_slashes_change_the_object_and_record_the_merged_path(client, user):
    cluster = factories.make_cluster(user, name="web")

    patched = client.patch(f"/api/v1//nodecluster//{cluster.uuid}//", {"nickname": "front"}, format="json")
    deployed = client.post(f"/api/v1/nodecluster/{cluster.uuid}//deploy//")

    assert patched.status_code == 200, patched.content
    assert deployed.status_code == 202, deployed.content
    cluster.refresh_from_db()
    assert (cluster.nickname, cluster.state) == ("front", NodeClusterState.DEPLOYING)
    assert header_action(patched).path == f"/api/v1/nodecluster/{cluster.uuid}/"
    assert header_action(deployed).path == f"/api/v1/nodecluster/{cluster.uuid}/deploy/"


def test_slashes_are_merged_in_place_not_redirected_and_page_links_use_the_merged_path(client, user):
    for name in ("a", "b"):
        factories.make_cluster(user, name=name)

    response = client.get("/api/v1//nodecluster//", {"limit": 1})

    assert response.status_code == 200
    assert response.json()["meta"]["next"] == "/api/v1/nodecluster/?limit=1&offset=1"


def test_an_unknown_path_with_repeated_slashes_is_still_a_json_404(client):
    body = assert_error(client.get("/api/v1//nowhere//"), 404)

    assert "/api/v1/nowhere/" in body["error"]
