"""Engine tests drive the reconciler and node steps in-process, one round at a time, against the simulated cloud."""

import pytest

from nodeclusters import node_steps, reconciler
from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Node, NodeCluster
from providers.models import SimulatedInstance

STEPS = {
    NodeState.DEPLOYING: node_steps.node_deploy_step,
    NodeState.TERMINATING: node_steps.node_terminate_step,
    NodeState.UPGRADING: node_steps.node_upgrade_step,
}
BUSY = {NodeClusterState.DEPLOYING, NodeClusterState.SCALING, NodeClusterState.TERMINATING}


@pytest.fixture(autouse=True)
def instant_simulated_cloud(settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SIMULATED_BOOT_SECONDS = 0
    settings.SIMULATED_FAILURE_RATE = 0.0
    settings.SIMULATED_SEED = "tests"


def run_round(cluster_uuid) -> reconciler.ReconcileResult | None:
    """One reconcile, then one step for every node in transit (what the worker would run next)."""
    result = reconciler.reconcile_node_cluster(cluster_uuid)
    for node in Node.objects.filter(node_cluster_id=cluster_uuid, state__in=list(STEPS)):
        STEPS[node.state](node.uuid)
    return result


def converge(cluster_uuid, rounds: int = 30) -> NodeCluster:
    """Rounds until the cluster leaves the busy states (bounded, so a livelock fails the test)."""
    for _ in range(rounds):
        run_round(cluster_uuid)
        reconciler.reconcile_node_cluster(cluster_uuid)
        cluster = NodeCluster.objects.get(pk=cluster_uuid)
        if cluster.state not in BUSY:
            return cluster
    raise AssertionError(f"cluster still {cluster.state} after {rounds} rounds")


def live_instances(**filters) -> list[SimulatedInstance]:
    return list(SimulatedInstance.objects.filter(terminated_at__isnull=True, **filters))
