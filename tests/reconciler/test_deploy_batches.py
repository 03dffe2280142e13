"""Deploy steps in batches: one task for several nodes' steps once many nodes wait across the fleet, one task per
node otherwise; each node's step runs as ever, and a transient error sends that node alone to be retried."""

from functools import partial
from unittest import mock

import pytest
from django.db import connection

from nodeclusters import node_steps, reconciler, tasks
from nodeclusters.choices import NodeState
from nodeclusters.models import Node
from nodeclusters.services import actions as action_services
from providers.base import TransientProviderError
from providers.simulated import SimulatedDriver
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed_off():
    """The engine tasks handed off so far as (name, args) (they go out when the test's transaction would commit)."""

    def tasks_handed_off() -> list:
        found = []
        for _, callback, _ in connection.run_on_commit:
            if isinstance(callback, partial) and callback.func is action_services._enqueue:
                found.append((callback.args[0], tuple(callback.args[1])))
            elif isinstance(callback, partial) and callback.func is action_services._enqueue_many:
                found += [(name, tuple(args)) for name, args in callback.args[0]]
        return found

    return tasks_handed_off


def deploy(user, name: str, nodes: int):
    cluster = factories.deploy(factories.make_cluster(user, name=name, target_num_nodes=nodes))
    return cluster, reconciler.reconcile_node_cluster(cluster.uuid)


def test_a_lone_cluster_gets_a_task_per_node(user, catalog, handed_off):
    _, result = deploy(user, "lone", 10)
    steps = [task for task in handed_off() if task[0] != "nodeclusters.reconcile_node_cluster"]
    assert sorted(steps) == sorted(("nodeclusters.deploy_node", (str(uuid),)) for uuid in result.created)


def test_many_nodes_waiting_across_the_fleet_go_in_batches(user, catalog, handed_off, settings):
    settings.ENGINE_DEPLOY_PARALLELISM = 4
    settings.ENGINE_DEPLOY_BATCH_MAX = 5
    results = [deploy(user, f"fleet-{number}", 6)[1] for number in range(4)]
    steps = [task for task in handed_off() if task[0] in ("nodeclusters.deploy_node", "nodeclusters.deploy_nodes")]
    # The first cluster's 6 nodes are all that wait: 2 a thread. The last one's see 24 waiting: 6 a thread, so
    # batches of the most allowed, 5.
    first = [args for name, args in steps if set(args) <= {str(uuid) for uuid in results[0].created}]
    last = [args for name, args in steps if set(args) <= {str(uuid) for uuid in results[-1].created}]
    assert sorted(len(args) for args in first) == [2, 2, 2]
    assert sorted(len(args) for args in last) == [1, 5]
    assert all(name == "nodeclusters.deploy_nodes" for name, args in steps if len(args) > 1)
    assert all(name == "nodeclusters.deploy_node" for name, args in steps if len(args) == 1)
    # Every node is scheduled once, whichever way.
    scheduled = sorted(uuid for _, args in steps for uuid in args)
    assert scheduled == sorted(str(uuid) for result in results for uuid in result.created)


def test_a_batch_runs_each_nodes_step_and_retries_a_transient_failure_alone(user, catalog, settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster, result = deploy(user, "batch", 3)
    flaky = str(result.created[1])
    real_create = SimulatedDriver.create_node

    def create(self, spec):
        if spec.node_uuid == flaky:
            raise TransientProviderError("simulated: try again")
        return real_create(self, spec)

    with (
        mock.patch.object(SimulatedDriver, "create_node", autospec=True, side_effect=create),
        mock.patch.object(tasks.deploy_node, "apply_async") as retry,
    ):
        outcomes = tasks.deploy_nodes(*[str(uuid) for uuid in result.created])
    assert outcomes == {node_steps.Outcome.WAITING.value: 2, node_steps.Outcome.TRANSIENT.value: 1}
    retry.assert_called_once_with(args=(flaky,), kwargs={"transient_attempt": 1}, countdown=mock.ANY)
    nodes = {str(node.uuid): node for node in Node.objects.filter(node_cluster=cluster)}
    assert nodes.pop(flaky).instance_id == ""
    assert all(node.instance_id and node.state == NodeState.DEPLOYING for node in nodes.values())
    assert all(not node.lease_token for node in Node.objects.filter(node_cluster=cluster))  # every lease released
