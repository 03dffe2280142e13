"""A list page costs a constant number of SQL queries, however many nodes and actions its objects have."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, ActionLogLine, AvailabilityZone
from tests import factories
from tests.api.helpers import cluster_url, set_cluster_state

pytestmark = pytest.mark.django_db

PAGE = 25
MAX_QUERIES = 6  # including the API key lookup


def page_queries(client, url: str) -> int:
    """SQL queries one full list page costs (after a warm-up request, so the key's last_used_at is fresh)."""
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"limit": PAGE})
    assert response.status_code == 200, response.content
    assert len(response.json()["objects"]) == PAGE
    return len(queries)


def add_actions(cluster, count: int) -> None:
    Action.objects.bulk_create(
        Action(
            owner_id=cluster.owner_id,
            action="Node Cluster Update",
            object_uri=cluster_url(cluster),
            node_cluster=cluster,
            state=ActionState.SUCCESS,
            start_date=cluster.created_at,
        )
        for _ in range(count)
    )


def test_nodecluster_list_page_costs_the_same_with_many_nodes_and_actions(client, user):
    clusters = [factories.make_cluster(user, name=f"c{index}") for index in range(PAGE)]
    bare = page_queries(client, "/api/v1/nodecluster/")

    for cluster in clusters:
        set_cluster_state(cluster, NodeClusterState.DEPLOYED)
        for state in (NodeState.DEPLOYED,) * 4 + (NodeState.DEPLOYING, NodeState.TERMINATED):
            factories.make_node(cluster, state=state)
        add_actions(cluster, 5)
    busy = page_queries(client, "/api/v1/nodecluster/")

    assert busy == bare
    assert busy == 2  # the API key, then the page: rows, total, counts and references in one query
    body = client.get("/api/v1/nodecluster/").json()["objects"]
    assert {len(item["nodes"]) for item in body} == {6}
    assert {item["current_num_nodes"] for item in body} == {4}


def test_node_list_page_costs_the_same_however_spread_its_nodes_are(client, user):
    """25 nodes of one cluster, then 25 more each in its own AWS cluster and availability zone."""
    one = factories.make_cluster(user, name="one")
    for _ in range(PAGE):
        factories.make_node(one)
    bare = page_queries(client, "/api/v1/node/")

    zones = list(AvailabilityZone.objects.filter(region__name="us-east-1"))
    for index in range(PAGE):
        cluster = factories.make_cluster(
            user, name=f"aws{index}", provider="aws", region_name="us-east-1", type_name="t2.micro"
        )
        factories.make_node(cluster, availability_zone=zones[index % len(zones)])
        add_actions(cluster, 5)
    spread = page_queries(client, "/api/v1/node/")

    assert spread == bare
    assert spread <= MAX_QUERIES
    body = client.get("/api/v1/node/").json()["objects"]
    assert all(item["availability_zone"] for item in body)


def test_action_list_page_costs_the_same_however_long_the_logs(client, user):
    """Log lines are not part of an action's JSON (they are read at /logs/), so a page never loads them."""
    cluster = factories.make_cluster(user, name="logged")
    add_actions(cluster, PAGE)
    bare = page_queries(client, "/api/v1/action/")

    ActionLogLine.objects.bulk_create(
        ActionLogLine(action=action, message=f"step {index}")
        for action in Action.objects.filter(owner=user)
        for index in range(20)
    )
    logged = page_queries(client, "/api/v1/action/")

    assert logged == bare
    assert logged == 2  # the API key, then the page with its total
