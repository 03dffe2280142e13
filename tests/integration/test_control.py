"""Exact control against real worker processes (PostgreSQL, Redis): named nodes go and only they; a dry run leaves
the running engine nothing to do."""

import pytest

from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Action, Node, NodeCluster
from providers.models import SimulatedInstance
from tests.support.engine import wait_until

pytestmark = pytest.mark.integration
CLUSTER = {
    "name": "controlled",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    "target_num_nodes": 4,
    "scale_in_policy": "oldest_first",
}


def settled(uuid, engine) -> NodeCluster:
    return wait_until(
        lambda: NodeCluster.objects.filter(pk=uuid, state=NodeClusterState.DEPLOYED).first(),
        timeout=60,
        what=f"cluster {uuid} to be Deployed",
        engine=engine,
    )


def live_instance_nodes(uuid) -> set[str]:
    return set(
        SimulatedInstance.objects.filter(cluster_uuid=str(uuid), terminated_at__isnull=True).values_list(
            "node_uuid", flat=True
        )
    )


def test_remove_nodes_then_the_policy_with_a_running_engine(client, start_engine):
    engine = start_engine(env={"SIMULATE_PROVIDERS": "1", "SIMULATED_BOOT_SECONDS": "0.5"})
    uuid = client.post("/api/v1/nodecluster/", CLUSTER, format="json").json()["uuid"]
    assert client.post(f"/api/v1/nodecluster/{uuid}/deploy/").status_code == 202
    settled(uuid, engine)
    nodes = list(Node.objects.filter(node_cluster_id=uuid).order_by("created_at"))
    named = nodes[3]  # the newest: oldest_first alone would never pick it

    # A dry run first: the plan names the node and the oldest one, and nothing is recorded or done.
    actions_before = Action.objects.count()
    plan = client.patch(
        f"/api/v1/nodecluster/{uuid}/?dry_run=true",
        {"remove_nodes": [f"/api/v1/node/{named.uuid}/"], "target_num_nodes": 2},
        format="json",
    ).json()["plan"]
    assert plan["terminate"] == [f"/api/v1/node/{named.uuid}/", f"/api/v1/node/{nodes[0].uuid}/"]
    assert Action.objects.count() == actions_before

    response = client.patch(
        f"/api/v1/nodecluster/{uuid}/",
        {"remove_nodes": [f"/api/v1/node/{named.uuid}/"], "target_num_nodes": 2},
        format="json",
    )
    assert response.status_code == 202, response.content
    wait_until(
        lambda: (
            NodeCluster.objects.filter(pk=uuid, state=NodeClusterState.DEPLOYED).exists()
            and not Node.objects.filter(node_cluster_id=uuid, state=NodeState.TERMINATING).exists()
        ),
        timeout=60,
        what="the scale-down to finish",
        engine=engine,
    )
    kept = {str(nodes[1].uuid), str(nodes[2].uuid)}
    assert live_instance_nodes(uuid) == kept
    states = dict(Node.objects.filter(node_cluster_id=uuid).values_list("uuid", "state"))
    assert {states[nodes[0].uuid], states[named.uuid]} == {NodeState.TERMINATED}
    action = client.get(response["X-Tutum-Action-URI"]).json()
    assert action["state"] == "Success"
    terminated = {step["node"] for step in action["steps"] if step["step"] == "terminate"}
    assert terminated == {f"/api/v1/node/{named.uuid}/", f"/api/v1/node/{nodes[0].uuid}/"}
