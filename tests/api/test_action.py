"""`/api/v1/action/`: list, get, filters (object, include_related, state, dates), cancel and retry."""

import datetime
import json

import pytest

from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action
from nodeclusters.services.actions import action_finish
from tests import factories
from tests.api.helpers import (
    RECONCILE_TASK,
    RFC2822,
    action_url,
    assert_error,
    cluster_url,
    hand_offs,
    header_action,
    node_url,
    set_cluster_state,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/action/"
UTC = datetime.UTC

#: action.md's attributes and the JSON types each must have.
ATTRIBUTE_TYPES = {
    "resource_uri": str,
    "uuid": str,
    "object": str,
    "action": str,
    "method": str,
    "path": str,
    "user_agent": str,
    "start_date": str,
    "end_date": (str, type(None)),
    "state": str,
    "ip": (str, type(None)),
    "location": str,
    "body": str,
    "is_user_action": bool,
    "can_be_canceled": bool,
    "can_be_retried": bool,
}


def listed(client, **params) -> list[str]:
    """The UUIDs a filtered action list returns (one page is enough for these tests)."""
    response = client.get(LIST_URL, params)
    assert response.status_code == 200, response.content
    return [item["uuid"] for item in response.json()["objects"]]


def uuids(*actions) -> set[str]:
    return {str(action.uuid) for action in actions}


@pytest.fixture
def cluster(user, catalog):
    return factories.make_cluster(user, name="web")


# --- reads --------------------------------------------------------------------------------------------------------


def test_detail_of_a_create_action_has_every_documented_attribute(client, user):
    request_body = {
        "name": "web",
        "region": "/api/v1/region/digitalocean/lon1/",
        "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    }
    created = client.post("/api/v1/nodecluster/", request_body, format="json", HTTP_USER_AGENT="python-tutum/v0.21.1")
    action = header_action(created)

    response = client.get(action_url(action))

    assert response.status_code == 200
    body = response.json()
    assert body == body | {
        "resource_uri": f"/api/v1/action/{action.uuid}/",
        "uuid": str(action.uuid),
        "object": created.json()["resource_uri"],
        "action": "Node Cluster Create",
        "method": "POST",
        "path": "/api/v1/nodecluster/",
        "user_agent": "python-tutum/v0.21.1",
        "state": "Success",
        "ip": "127.0.0.1",
        "location": "",
        "is_user_action": True,
        "can_be_canceled": False,
        "can_be_retried": False,
    }
    assert json.loads(body["body"]) == request_body
    assert RFC2822.match(body["start_date"])
    assert body["end_date"] == body["start_date"]
    for attribute, json_type in ATTRIBUTE_TYPES.items():
        assert isinstance(body[attribute], json_type), attribute


def test_list_is_newest_first_and_renders_like_the_detail(client, cluster):
    deploy = header_action(client.post(cluster_url(cluster, "deploy/")))
    create = cluster.actions.get(action="Node Cluster Create")
    Action.objects.filter(pk=create.pk).update(start_date=datetime.datetime(2014, 9, 16, tzinfo=UTC))

    response = client.get(LIST_URL)

    assert response.status_code == 200
    objects = response.json()["objects"]
    assert [item["uuid"] for item in objects] == [str(deploy.uuid), str(create.uuid)]
    for item in objects:
        # The detail adds the per-node steps, which a list leaves out (they would cost a query per page).
        detail = client.get(item["resource_uri"]).json()
        assert detail.pop("steps") == []
        assert item == detail
    assert objects[0]["end_date"] is None
    assert objects[0]["state"] == "In progress"


def test_unknown_action_is_a_json_404(client):
    assert_error(client.get("/api/v1/action/6246c558-976c-4df6-ba60-eb1a344a17af/"), 404)


# --- filters ------------------------------------------------------------------------------------------------------


@pytest.fixture
def family(client, user, cluster):
    """A cluster with a node, an action on each, and a bystander cluster with its own action."""
    node = factories.make_node(cluster)
    cluster_update = header_action(client.patch(cluster_url(cluster), {"nickname": "w"}, format="json"))
    node_update = header_action(client.patch(node_url(node), {"nickname": "n"}, format="json"))
    bystander = factories.make_cluster(user, name="other")
    return {
        "cluster": cluster,
        "node": node,
        "cluster_actions": [cluster.actions.get(action="Node Cluster Create"), cluster_update],
        "node_action": node_update,
        "bystander_action": bystander.actions.get(),
    }


def test_object_filter_lists_the_actions_of_one_cluster(client, family):
    cluster_actions = uuids(*family["cluster_actions"])

    assert set(listed(client, object=cluster_url(family["cluster"]))) == cluster_actions
    assert set(listed(client, object=cluster_url(family["cluster"]), include_related="false")) == cluster_actions


def test_object_filter_with_include_related_adds_the_cluster_nodes_actions(client, family):
    found = listed(client, object=cluster_url(family["cluster"]), include_related="true")

    assert set(found) == uuids(*family["cluster_actions"], family["node_action"])


def test_object_filter_on_a_node_with_include_related_adds_its_cluster_actions(client, family):
    node_uri = node_url(family["node"])

    assert set(listed(client, object=node_uri)) == uuids(family["node_action"])
    assert set(listed(client, object=node_uri, include_related="true")) == uuids(
        family["node_action"], *family["cluster_actions"]
    )


def test_object_filter_accepts_full_urls(client, family):
    found = listed(client, object=f"https://dashboard.example.com{cluster_url(family['cluster'])}")

    assert set(found) == uuids(*family["cluster_actions"])


@pytest.mark.parametrize(
    "value",
    ["garbage", "/api/v1/service/5516df0b-721e-4470-b350-741ff22e63a0/", "/api/v1/nodecluster/not-a-uuid/"],
)
def test_object_filter_refuses_a_bad_uri(client, value):
    body = assert_error(client.get(LIST_URL, {"object": value}), 400)

    assert "object" in body["errors"]


def test_include_related_must_be_a_boolean(client, cluster):
    assert_error(client.get(LIST_URL, {"object": cluster_url(cluster), "include_related": "maybe"}), 400)


def test_state_filter(client, cluster):
    deploy = header_action(client.post(cluster_url(cluster, "deploy/")))
    create = cluster.actions.get(action="Node Cluster Create")

    assert listed(client, state="In progress") == [str(deploy.uuid)]
    assert listed(client, state="Success") == [str(create.uuid)]
    assert listed(client, state="Failed") == []
    assert "state" in assert_error(client.get(LIST_URL, {"state": "Done"}), 400)["errors"]


@pytest.fixture
def dated(user, cluster):
    """Three finished actions a day apart, each ending an hour after it started."""
    actions = {}
    for day in (15, 16, 17):
        action = Action.objects.create(
            owner=user,
            action=f"Day {day}",
            object_uri=cluster_url(cluster),
            node_cluster=cluster,
            state=ActionState.SUCCESS,
            start_date=datetime.datetime(2014, 9, day, 12, 0, 0, tzinfo=UTC),
            end_date=datetime.datetime(2014, 9, day, 13, 0, 0, tzinfo=UTC),
        )
        actions[day] = action
    cluster.actions.filter(action="Node Cluster Create").delete()
    return actions


@pytest.mark.parametrize(
    ("params", "days"),
    [
        ({"start_date__gte": "Tue, 16 Sep 2014 12:00:00 +0000"}, {16, 17}),
        ({"start_date__gte": "2014-09-16T12:00:01Z"}, {17}),
        ({"start_date__lte": "Tue, 16 Sep 2014 12:00:00 +0000"}, {15, 16}),
        ({"start_date__lte": "2014-09-16T11:59:59+00:00"}, {15}),
        ({"start_date__gte": "2014-09-16", "start_date__lte": "2014-09-16T23:59:59"}, {16}),
        ({"start_date__gte": "Tue, 16 Sep 2014 14:00:00 +0200"}, {16, 17}),
        ({"end_date__gte": "Tue, 16 Sep 2014 13:00:00 +0000"}, {16, 17}),
        ({"end_date__lte": "2014-09-16T13:00:00Z"}, {15, 16}),
        ({"end_date__lte": "Mon, 15 Sep 2014 12:59:59 +0000"}, set()),
    ],
)
def test_date_filters_accept_rfc2822_and_iso8601(client, dated, params, days):
    assert set(listed(client, **params)) == uuids(*(dated[day] for day in days))


@pytest.mark.parametrize("field", ["start_date__gte", "start_date__lte", "end_date__gte", "end_date__lte"])
@pytest.mark.parametrize("value", ["yesterday", "2014-13-40", "Tue, 99 Sep 2014", "1410883275x"])
def test_date_filters_refuse_a_bad_date(client, dated, field, value):
    body = assert_error(client.get(LIST_URL, {field: value}), 400)

    assert field in body["errors"]


@pytest.mark.parametrize(
    ("params", "days"),
    [
        # Past year 1 or 9999 once in UTC: the first or last representable moment, which filters the same.
        ({"start_date__lte": "9999-12-31T23:59:59Z"}, {15, 16, 17}),
        ({"end_date__lte": "Fri, 31 Dec 9999 23:59:59 +0000"}, {15, 16, 17}),
        ({"start_date__gte": "9999-12-31T23:59:59-05:00"}, set()),
        ({"end_date__lte": "0001-01-01T00:00:00+05:00"}, set()),
        ({"start_date__gte": "9999-12-31T23:59:59Z"}, set()),
        ({"end_date__gte": "0001-01-01T00:00:00Z"}, {15, 16, 17}),
    ],
)
def test_extreme_dates_filter_like_the_ends_of_time(client, dated, params, days):
    assert set(listed(client, **params)) == uuids(*(dated[day] for day in days))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2016-02-29", True),  # a leap day
        ("2014-02-29", False),  # no such day
        ("29 Feb 2000 00:00 UT", True),
        ("29 Feb 1900 00:00 UT", False),
        ("Tue, 31 Sep 2014 17:01:15 +0000", False),
        ("2014-09-16t17:01:15z", True),
        ("2014-09-16 17:01", True),
        (" 2014-09-16", False),  # as sent: nothing is trimmed
        ("0000-01-01", False),
    ],
)
def test_date_filters_take_exactly_the_documented_grammar(client, dated, value, valid):
    response = client.get(LIST_URL, {"start_date__gte": value})

    assert response.status_code == (200 if valid else 400), response.content


def test_an_action_is_found_by_its_own_rendered_dates(client, cluster):
    """Dates are rendered to the second but stored with microseconds: a rendered date must still find its action."""
    action = cluster.actions.get()
    Action.objects.filter(pk=action.pk).update(
        start_date=datetime.datetime(2014, 9, 16, 17, 1, 15, 500000, tzinfo=UTC),
        end_date=datetime.datetime(2014, 9, 16, 17, 1, 16, 500000, tzinfo=UTC),
    )
    shown = client.get(action_url(action)).json()

    for field in ("start_date", "end_date"):
        assert listed(client, **{f"{field}__gte": shown[field]}) == [str(action.uuid)]
        assert listed(client, **{f"{field}__lte": shown[field]}) == [str(action.uuid)]


# --- cancel -------------------------------------------------------------------------------------------------------


def _cancel(client, action, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url(action, "cancel/"))
    return response, callbacks


def test_cancel_a_deploy_keeps_the_nodes_already_up(client, user, django_capture_on_commit_callbacks):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=4))
    deploy = cluster.current_action
    for state in (NodeState.DEPLOYED, NodeState.UNREACHABLE, NodeState.DEPLOYING, NodeState.TERMINATED):
        factories.make_node(cluster, state=state)

    response, callbacks = _cancel(client, deploy, django_capture_on_commit_callbacks)

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "Canceling"
    assert header_action(response) == deploy
    deploy.refresh_from_db()
    cluster.refresh_from_db()
    assert (deploy.state, deploy.can_be_canceled) == (ActionState.CANCELING, False)
    assert "Cancel requested" in deploy.logs
    assert cluster.target_num_nodes == 2
    assert cluster.state == NodeClusterState.DEPLOYING
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


def test_cancel_a_scale_keeps_the_nodes_already_up(client, user, django_capture_on_commit_callbacks):
    cluster = set_cluster_state(factories.make_cluster(user, target_num_nodes=2), NodeClusterState.DEPLOYED)
    factories.make_node(cluster)
    factories.make_node(cluster)
    scale = header_action(client.patch(cluster_url(cluster), {"target_num_nodes": 5}, format="json"))
    factories.make_node(cluster, state=NodeState.DEPLOYING)

    response, callbacks = _cancel(client, scale, django_capture_on_commit_callbacks)

    assert response.status_code == 202, response.content
    scale.refresh_from_db()
    cluster.refresh_from_db()
    assert scale.state == ActionState.CANCELING
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.SCALING, 2)
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


@pytest.mark.parametrize("finished", [ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED])
def test_cancel_a_finished_action_is_a_conflict(client, user, finished, django_capture_on_commit_callbacks):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=3))
    deploy = cluster.current_action
    action_finish(action=deploy, state=finished)
    deploy.refresh_from_db()
    before = Action.objects.values().get(pk=deploy.pk)

    response, callbacks = _cancel(client, deploy, django_capture_on_commit_callbacks)

    body = assert_error(response, 409)
    assert f"'{finished}'" in body["error"]
    assert Action.objects.values().get(pk=deploy.pk) == before
    cluster.refresh_from_db()
    assert cluster.target_num_nodes == 3
    assert callbacks == []


def test_cancel_a_terminate_action_is_a_conflict(client, cluster, django_capture_on_commit_callbacks):
    terminate = header_action(client.delete(cluster_url(cluster)))
    assert client.get(action_url(terminate)).json()["can_be_canceled"] is False

    response, callbacks = _cancel(client, terminate, django_capture_on_commit_callbacks)

    assert_error(response, 409)
    terminate.refresh_from_db()
    cluster.refresh_from_db()
    assert terminate.state == ActionState.IN_PROGRESS
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.TERMINATING, 0)
    assert callbacks == []


# --- retry --------------------------------------------------------------------------------------------------------


def test_retry_a_failed_scale_asks_for_its_target_again(client, user, django_capture_on_commit_callbacks):
    cluster = set_cluster_state(factories.make_cluster(user), NodeClusterState.DEPLOYED)
    factories.make_node(cluster)
    scale = header_action(client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json"))
    # What the engine leaves behind when it gives up: the action Failed, the cluster settled short of its target.
    action_finish(action=scale, state=ActionState.FAILED, message="Gave up")
    set_cluster_state(cluster, NodeClusterState.PARTLY_DEPLOYED, target_num_nodes=1)
    assert client.get(action_url(scale)).json()["can_be_retried"] is True

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url(scale, "retry/"))

    assert response.status_code == 202, response.content
    assert header_action(response) == scale
    body = response.json()
    assert (body["state"], body["end_date"], body["can_be_retried"], body["can_be_canceled"]) == (
        "In progress",
        None,
        False,
        True,
    )
    scale.refresh_from_db()
    cluster.refresh_from_db()
    assert scale.state == ActionState.IN_PROGRESS
    assert "Retried" in scale.logs
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.SCALING, 3)
    assert cluster.current_action == scale
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(cluster.uuid)])]


def test_retry_a_successful_scale_asks_for_its_target_again(client, user):
    cluster = set_cluster_state(factories.make_cluster(user), NodeClusterState.DEPLOYED)
    scale = header_action(client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json"))
    action_finish(action=scale, state=ActionState.SUCCESS, message="Deployed: 3 node(s) up")
    set_cluster_state(cluster, NodeClusterState.DEPLOYED, target_num_nodes=1)

    response = client.post(action_url(scale, "retry/"))

    assert response.status_code == 202, response.content
    cluster.refresh_from_db()
    assert (cluster.state, cluster.target_num_nodes) == (NodeClusterState.SCALING, 3)


def test_retry_an_in_progress_action_is_a_conflict(client, user, django_capture_on_commit_callbacks):
    cluster = set_cluster_state(factories.make_cluster(user), NodeClusterState.DEPLOYED)
    scale = header_action(client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json"))
    before = Action.objects.values().get(pk=scale.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url(scale, "retry/"))

    body = assert_error(response, 409)
    assert "'In progress'" in body["error"]
    assert "'cancel'" in body["error"]
    assert Action.objects.values().get(pk=scale.pk) == before
    assert callbacks == []


def test_retry_an_action_that_sets_no_target_is_a_conflict(client, cluster):
    create = cluster.actions.get()

    assert_error(client.post(action_url(create, "retry/")), 409)

    create.refresh_from_db()
    assert create.state == ActionState.SUCCESS
