"""Self-repair against real worker processes and beat (PostgreSQL, Redis): an instance deleted behind the server's
back is replaced by the engine on its own; two repair passes at once replace a node once."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from nodeclusters import repair
from nodeclusters.choices import ActionName, NodeClusterState, NodeState, ReasonCode
from nodeclusters.models import Action, Node, NodeCluster
from providers.models import SimulatedInstance
from tests import factories
from tests.support.engine import wait_until

pytestmark = pytest.mark.integration
CLUSTER = {
    "name": "self-repairing",
    "region": "/api/v1/region/digitalocean/lon1/",
    "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    "target_num_nodes": 3,
}


def test_an_instance_deleted_at_the_provider_is_replaced_by_the_running_engine(client, start_engine):
    engine = start_engine(
        env={"SIMULATE_PROVIDERS": "1", "SIMULATED_BOOT_SECONDS": "0.5", "ENGINE_HEALTH_CHECK_INTERVAL": "1"}
    )
    uuid = client.post("/api/v1/nodecluster/", CLUSTER, format="json").json()["uuid"]
    assert client.post(f"/api/v1/nodecluster/{uuid}/deploy/").status_code == 202
    wait_until(
        lambda: NodeCluster.objects.filter(pk=uuid, state=NodeClusterState.DEPLOYED).exists(),
        timeout=60,
        what="the cluster to deploy",
        engine=engine,
    )
    victim = Node.objects.filter(node_cluster_id=uuid).order_by("created_at").first()
    SimulatedInstance.objects.filter(instance_id=victim.instance_id).update(terminated_at=timezone.now())

    replacement = wait_until(
        lambda: Node.objects.filter(replaces=victim, state=NodeState.DEPLOYED).first(),
        timeout=90,
        what="the gone node's replacement to deploy",
        engine=engine,
    )
    action = wait_until(
        lambda: (
            Action.objects.filter(node_cluster_id=uuid, action=ActionName.NODE_CLUSTER_REPAIR, state="Success")
            .exclude(end_date=None)
            .first()
        ),
        timeout=60,
        what="the repair action to end",
        engine=engine,
    )
    victim.refresh_from_db()
    assert victim.state in (NodeState.TERMINATING, NodeState.TERMINATED)
    assert victim.failure_reason_code == ReasonCode.INSTANCE_GONE
    cluster = NodeCluster.objects.get(pk=uuid)
    assert cluster.target_num_nodes == 3
    body = client.get(f"/api/v1/action/{action.uuid}/").json()
    assert body["is_user_action"] is False and body["reason_code"] is None
    assert {(step["node"], step["step"], step["state"]) for step in body["steps"]} >= {
        (f"/api/v1/node/{victim.uuid}/", "repair", "Success"),
        (f"/api/v1/node/{replacement.uuid}/", "boot", "Success"),
    }
    up = set(Node.objects.filter(node_cluster_id=uuid, state=NodeState.DEPLOYED).values_list("instance_id", flat=True))
    assert len(up) == 3 and victim.instance_id not in up


def test_two_repair_passes_at_once_replace_a_node_once(postgres, user, catalog, settings):
    settings.SIMULATE_PROVIDERS = True
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=3))
    victim, *_ = [factories.make_node(cluster, instance_id=f"i-{index}") for index in range(3)]
    NodeCluster.objects.filter(pk=cluster.pk).update(state=NodeClusterState.DEPLOYED)
    Node.objects.filter(pk=victim.pk).update(state=NodeState.UNREACHABLE, failure_reason_code=ReasonCode.INSTANCE_GONE)
    barrier = threading.Barrier(2)
    results = []

    def run_pass():
        try:
            barrier.wait(timeout=10)
            results.append(repair.repair_node_cluster(cluster.uuid))
        finally:
            connection.close()

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(len(result.replaced) for result in results) == [0, 1]
    assert Node.objects.filter(replaces=victim).count() == 1
    assert Action.objects.filter(node_cluster=cluster, action=ActionName.NODE_CLUSTER_REPAIR).count() == 1
