"""Exact control of a scale through the API: bounds, the scale-in policy field, remove_nodes, and dry runs."""

import pytest

from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Action, Event, Node, NodeCluster
from tests import factories
from tests.api.helpers import assert_error, cluster_url, header_action, node_url

CREATE = {
    "name": "web",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    "region": "/api/v1/region/digitalocean/lon1/",
}


@pytest.fixture
def deployed(user, catalog):
    """A deployed cluster of three nodes, created one after the other (oldest first)."""
    cluster = factories.make_cluster(user, target_num_nodes=3)
    NodeCluster.objects.filter(pk=cluster.pk).update(state=NodeClusterState.DEPLOYED)
    cluster.refresh_from_db()
    nodes = [factories.make_node(cluster) for _ in range(3)]
    return cluster, nodes


def snapshot(cluster) -> tuple:
    """What a refused or dry-run request must leave untouched."""
    cluster.refresh_from_db()
    states = sorted(Node.objects.filter(node_cluster=cluster).values_list("uuid", "state"))
    return (
        cluster.state,
        cluster.target_num_nodes,
        cluster.min_num_nodes,
        cluster.max_num_nodes,
        states,
        Action.objects.count(),
        Event.objects.count(),
    )


class TestControlFields:
    def test_defaults_are_shown_on_every_cluster(self, client, deployed):
        body = client.get(cluster_url(deployed[0])).json()
        assert body["scale_in_policy"] == "newest_first"
        assert body["min_num_nodes"] is None and body["max_num_nodes"] is None
        assert body["unhealthy_timeout"] == 600
        assert body["max_unhealthy_percent"] == 40
        assert body["max_repairs_per_hour"] == 3

    def test_create_with_bounds_and_policy(self, client):
        response = client.post(
            "/api/v1/nodecluster/",
            {
                **CREATE,
                "target_num_nodes": 2,
                "min_num_nodes": 1,
                "max_num_nodes": 4,
                "scale_in_policy": "oldest_first",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["min_num_nodes"], body["max_num_nodes"], body["scale_in_policy"]) == (1, 4, "oldest_first")

    @pytest.mark.parametrize(
        ("extra", "named"),
        [
            ({"target_num_nodes": 5, "max_num_nodes": 3}, "max_num_nodes (3)"),
            ({"target_num_nodes": 1, "min_num_nodes": 2}, "min_num_nodes (2)"),
            ({"min_num_nodes": 4, "max_num_nodes": 2}, "min_num_nodes (4) is above max_num_nodes (2)"),
        ],
    )
    def test_create_outside_bounds_is_refused_naming_the_bound(self, client, extra, named):
        body = assert_error(client.post("/api/v1/nodecluster/", {**CREATE, **extra}, format="json"), 400)
        assert named in body["error"]
        assert not NodeCluster.objects.exists()

    def test_unknown_policy_is_a_400(self, client):
        response = client.post("/api/v1/nodecluster/", {**CREATE, "scale_in_policy": "random"}, format="json")
        body = assert_error(response, 400)
        assert "scale_in_policy" in body["error"]

    def test_scale_outside_the_stored_bounds_changes_nothing(self, client, deployed):
        cluster, _ = deployed
        assert client.patch(cluster_url(cluster), {"max_num_nodes": 5}, format="json").status_code == 200
        before = snapshot(cluster)
        body = assert_error(client.patch(cluster_url(cluster), {"target_num_nodes": 6}, format="json"), 400)
        assert "above the cluster's max_num_nodes (5)" in body["error"]
        assert snapshot(cluster) == before

    def test_bounds_that_exclude_the_current_target_are_refused(self, client, deployed):
        cluster, _ = deployed
        before = snapshot(cluster)
        body = assert_error(client.patch(cluster_url(cluster), {"min_num_nodes": 4}, format="json"), 400)
        assert "target_num_nodes 3 is below the cluster's min_num_nodes (4)" in body["error"]
        assert snapshot(cluster) == before

    def test_null_removes_a_bound(self, client, deployed):
        cluster, _ = deployed
        client.patch(cluster_url(cluster), {"max_num_nodes": 3}, format="json")
        response = client.patch(cluster_url(cluster), {"max_num_nodes": None, "target_num_nodes": 5}, format="json")
        assert response.status_code == 202, response.content
        assert response.json()["max_num_nodes"] is None


class TestRemoveNodes:
    def test_named_nodes_are_terminated_and_the_target_drops(self, client, deployed):
        cluster, nodes = deployed
        response = client.patch(cluster_url(cluster), {"remove_nodes": [node_url(nodes[0])]}, format="json")
        assert response.status_code == 202, response.content
        assert response.json()["target_num_nodes"] == 2
        assert Node.objects.get(pk=nodes[0].pk).state == NodeState.TERMINATING
        assert {Node.objects.get(pk=node.pk).state for node in nodes[1:]} == {NodeState.DEPLOYED}
        action = header_action(response)
        assert action.action == "Node Cluster Scale"
        assert node_url(nodes[0]) in action.logs
        steps = client.get(response["X-Tutum-Action-URI"]).json()["steps"]
        assert [(step["node"], step["step"], step["state"]) for step in steps] == [
            (node_url(nodes[0]), "terminate", "In progress")
        ]

    def test_full_urls_and_no_trailing_slash_are_accepted(self, client, deployed):
        cluster, nodes = deployed
        uri = f"https://example.test{node_url(nodes[1])}".rstrip("/")
        response = client.patch(cluster_url(cluster), {"remove_nodes": [uri]}, format="json")
        assert response.status_code == 202, response.content
        assert Node.objects.get(pk=nodes[1].pk).state == NodeState.TERMINATING

    def test_a_given_target_must_leave_room(self, client, deployed):
        cluster, nodes = deployed
        before = snapshot(cluster)
        response = client.patch(
            cluster_url(cluster), {"remove_nodes": [node_url(nodes[0])], "target_num_nodes": 3}, format="json"
        )
        body = assert_error(response, 400)
        assert "at most 2" in body["error"]
        assert snapshot(cluster) == before

    def test_a_given_target_within_room(self, client, deployed):
        cluster, nodes = deployed
        response = client.patch(
            cluster_url(cluster), {"remove_nodes": [node_url(nodes[2])], "target_num_nodes": 1}, format="json"
        )
        assert response.status_code == 202, response.content
        assert response.json()["target_num_nodes"] == 1
        assert Node.objects.get(pk=nodes[2].pk).state == NodeState.TERMINATING

    def test_not_a_live_member_is_a_400_naming_it(self, client, user, deployed):
        cluster, nodes = deployed
        other = factories.make_cluster(user, name="other")
        stranger = factories.make_node(other)
        gone = factories.make_node(cluster, state=NodeState.TERMINATED)
        before = snapshot(cluster)
        response = client.patch(
            cluster_url(cluster),
            {"remove_nodes": [node_url(nodes[0]), node_url(stranger), node_url(gone)]},
            format="json",
        )
        body = assert_error(response, 400)
        assert node_url(stranger) in body["error"] and node_url(gone) in body["error"]
        assert node_url(nodes[0]) not in body["error"]
        assert snapshot(cluster) == before

    def test_below_the_minimum_is_refused(self, client, deployed):
        cluster, nodes = deployed
        client.patch(cluster_url(cluster), {"min_num_nodes": 3}, format="json")
        body = assert_error(
            client.patch(cluster_url(cluster), {"remove_nodes": [node_url(nodes[0])]}, format="json"), 400
        )
        assert "min_num_nodes (3)" in body["error"]

    @pytest.mark.parametrize(
        "value", ["/api/v1/node/", ["/api/v1/nodecluster/0a0b0c0d-0000-4000-8000-000000000000/"], [1], None]
    )
    def test_malformed_lists_are_a_400(self, client, deployed, value):
        assert_error(client.patch(cluster_url(deployed[0]), {"remove_nodes": value}, format="json"), 400)

    def test_listed_twice_is_a_400(self, client, deployed):
        cluster, nodes = deployed
        body = assert_error(
            client.patch(cluster_url(cluster), {"remove_nodes": [node_url(nodes[0])] * 2}, format="json"), 400
        )
        assert "twice" in body["error"]


class TestDryRun:
    def test_scale_down_plans_the_newest_and_changes_nothing(self, client, deployed):
        cluster, nodes = deployed
        before = snapshot(cluster)
        response = client.patch(cluster_url(cluster) + "?dry_run=true", {"target_num_nodes": 1}, format="json")
        assert response.status_code == 200, response.content
        assert "X-Tutum-Action-URI" not in response
        body = response.json()
        assert body["dry_run"] is True
        assert body["plan"] == {
            "create": 0,
            "terminate": [node_url(nodes[2]), node_url(nodes[1])],
            "target_num_nodes": 1,
        }
        assert body["preflight"]["ok"] is True and body["preflight"]["reasons"] == []
        assert snapshot(cluster) == before

    def test_the_plan_follows_the_policy_and_puts_named_and_unreachable_nodes_first(self, client, deployed):
        cluster, nodes = deployed
        Node.objects.filter(pk=nodes[1].pk).update(state=NodeState.UNREACHABLE)
        client.patch(cluster_url(cluster), {"scale_in_policy": "oldest_first"}, format="json")
        extra = factories.make_node(cluster)
        response = client.patch(
            cluster_url(cluster) + "?dry_run=true",
            {"remove_nodes": [node_url(extra)], "target_num_nodes": 1},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["plan"]["terminate"] == [node_url(extra), node_url(nodes[1]), node_url(nodes[0])]

    def test_scale_up_plans_creates(self, client, deployed):
        response = client.patch(cluster_url(deployed[0]) + "?dry_run=true", {"target_num_nodes": 5}, format="json")
        assert response.json()["plan"] == {"create": 2, "terminate": [], "target_num_nodes": 5}

    def test_create_records_nothing(self, client):
        response = client.post("/api/v1/nodecluster/?dry_run=true", {**CREATE, "target_num_nodes": 4}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["plan"] == {"create": 0, "terminate": [], "target_num_nodes": 4}
        assert not NodeCluster.objects.exists() and not Action.objects.exists() and not Event.objects.exists()

    def test_deploy_plans_every_node(self, client, user, catalog):
        cluster = factories.make_cluster(user, target_num_nodes=3)
        before = snapshot(cluster)
        response = client.post(cluster_url(cluster, "deploy/") + "?dry_run=true")
        assert response.status_code == 200, response.content
        assert response.json()["plan"] == {"create": 3, "terminate": [], "target_num_nodes": 3}
        assert snapshot(cluster) == before

    def test_delete_plans_every_node(self, client, deployed):
        cluster, nodes = deployed
        before = snapshot(cluster)
        response = client.delete(cluster_url(cluster) + "?dry_run=true")
        assert response.status_code == 200, response.content
        plan = response.json()["plan"]
        assert sorted(plan["terminate"]) == sorted(node_url(node) for node in nodes)
        assert plan["target_num_nodes"] == 0
        assert snapshot(cluster) == before

    def test_a_refused_request_is_refused_in_a_dry_run_too(self, client, deployed):
        cluster, _ = deployed
        client.patch(cluster_url(cluster), {"max_num_nodes": 3}, format="json")
        response = client.patch(cluster_url(cluster) + "?dry_run=true", {"target_num_nodes": 9}, format="json")
        assert "max_num_nodes (3)" in assert_error(response, 400)["error"]

    def test_preflight_reasons_are_reported_not_raised(self, client, deployed, settings):
        settings.MAX_NODES_PER_USER = 4
        cluster, _ = deployed
        before = snapshot(cluster)
        response = client.patch(cluster_url(cluster) + "?dry_run=true", {"target_num_nodes": 6}, format="json")
        assert response.status_code == 200, response.content
        preflight = response.json()["preflight"]
        assert preflight["ok"] is False
        assert [reason["code"] for reason in preflight["reasons"]] == ["user_limit"]
        assert snapshot(cluster) == before

    @pytest.mark.parametrize("value", ["yes", "1", "TRUE", "maybe"])
    def test_only_true_or_false(self, client, deployed, value):
        response = client.patch(cluster_url(deployed[0]) + f"?dry_run={value}", {"target_num_nodes": 1}, format="json")
        assert "true or false" in assert_error(response, 400)["error"]
        assert NodeCluster.objects.get(pk=deployed[0].pk).target_num_nodes == 3

    def test_false_is_a_real_write(self, client, deployed):
        response = client.patch(cluster_url(deployed[0]) + "?dry_run=false", {"target_num_nodes": 2}, format="json")
        assert response.status_code == 202
        assert NodeCluster.objects.get(pk=deployed[0].pk).target_num_nodes == 2
