"""Deploy steps in batches: one task for several nodes' steps once many nodes wait across the fleet, one task per
node otherwise; each node's step runs as ever, and a transient error sends that node alone to be retried."""

from datetime import timedelta
from functools import partial
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from nodeclusters import node_steps, reconciler, tasks
from nodeclusters.choices import NodeState
from nodeclusters.models import Action, Node
from nodeclusters.node_steps import deploy as deploy_module
from nodeclusters.services import actions as action_services
from nodeclusters.services.accounts import driver_for
from providers.base import TransientProviderError
from providers.models import SimulatedInstance
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


def booting_batch(user, settings, nodes: int = 4):
    """A cluster's nodes planned for their deploy steps, on a simulated cloud whose instances boot for an hour."""
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster, result = deploy(user, "booting", nodes)
    return cluster, [str(uuid) for uuid in result.created]


def test_a_batch_records_its_booting_instances_together_in_a_few_statements(user, catalog, settings, client):
    cluster, uuids = booting_batch(user, settings, 10)
    with CaptureQueriesContext(connection) as queries:
        outcomes = tasks.deploy_nodes(*uuids)

    assert outcomes == {node_steps.Outcome.WAITING.value: 10}
    # The simulated cloud writes each instance it makes; the batch's own work is 13 statements for all ten nodes:
    # the claim, the load, the first log lines, the account looked up, the rows locked, the instances recorded, the
    # log lines, the two step updates, the region's poll scheduled, and the process's catalog rows (read once a
    # minute: three). One node at a time, it was eight statements a node.
    ours = [
        query
        for query in queries
        if "providers_simulatedinstance" not in query["sql"] and "SAVEPOINT" not in query["sql"]  # the test's own
    ]
    assert len(ours) <= 13, "\n".join(query["sql"][:120] for query in ours)
    nodes = list(Node.objects.filter(node_cluster=cluster))
    assert all(node.instance_id and not node.lease_token and node.state == NodeState.DEPLOYING for node in nodes)
    assert len({node.instance_id for node in nodes}) == 10
    assert sorted(live.node_uuid for live in SimulatedInstance.objects.all()) == sorted(uuids)
    # Each node's steps and log lines are its own, as a deploy step alone writes them.
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    body = client.get(f"/api/v1/action/{action.uuid}/").json()
    for node in nodes:
        steps = {step["step"]: step for step in body["steps"] if step["node"] == f"/api/v1/node/{node.uuid}/"}
        assert steps["create"]["state"] == "Success"
        assert steps["create"]["message"] == f"instance {node.instance_id} created (pending)"
        assert (steps["boot"]["state"], bool(steps["boot"]["start_date"])) == ("In progress", True)
        assert f"Node {node.uuid}: creating a " in action.logs
        assert f"Node {node.uuid}: instance {node.instance_id} created (pending)" in action.logs


def test_a_batch_gives_a_node_on_a_later_attempt_its_own_step_which_adopts_the_earlier_instance(
    user, catalog, settings
):
    _, uuids = booting_batch(user, settings, 2)
    retried = uuids[0]
    # An earlier attempt claimed the node, made its instance and died before recording it.
    Node.objects.filter(pk=retried).update(attempts=1)
    node = node_steps.common._load(retried)
    driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name)
    earlier = driver.create_node(node_steps.common._spec(node))

    steps = node_steps.nodes_deploy_step(uuids)

    assert {step.outcome for step in steps.values()} == {node_steps.Outcome.WAITING}
    assert Node.objects.get(pk=retried).instance_id == earlier.instance_id
    assert SimulatedInstance.objects.filter(node_uuid=retried).count() == 1


def test_a_batch_lands_an_instance_that_runs_at_once(user, catalog, settings):
    settings.SIMULATED_BOOT_SECONDS = 0
    cluster, result = deploy(user, "instant", 3)
    steps = node_steps.nodes_deploy_step([str(uuid) for uuid in result.created])
    assert {step.outcome for step in steps.values()} == {node_steps.Outcome.DONE}
    assert {node.state for node in Node.objects.filter(node_cluster=cluster)} == {NodeState.DEPLOYED}
    assert not any(node.lease_token for node in Node.objects.filter(node_cluster=cluster))


def test_a_batch_renews_the_leases_of_the_nodes_it_has_still_to_create(user, catalog, settings):
    cluster, uuids = booting_batch(user, settings, 3)
    settings.ENGINE_LEASE_SECONDS = 30
    clock = iter(range(0, 10_000, 20))  # each look at the clock is 20 s later: past a third of the lease
    leases = {}
    real_create = SimulatedDriver.create_node

    def create(self, spec):
        leases[spec.node_uuid] = Node.objects.get(pk=spec.node_uuid).lease_until
        return real_create(self, spec)

    with (
        mock.patch.object(deploy_module.time, "monotonic", side_effect=lambda: next(clock)),
        mock.patch.object(SimulatedDriver, "create_node", autospec=True, side_effect=create),
    ):
        claimed = timezone.now()
        steps = node_steps.nodes_deploy_step(uuids)

    assert {step.outcome for step in steps.values()} == {node_steps.Outcome.WAITING}
    # Every create ran under a lease renewed just before it.
    assert all(until >= claimed + timedelta(seconds=30) for until in leases.values())
    assert leases[uuids[2]] > leases[uuids[0]]
    assert not any(node.lease_token for node in Node.objects.filter(node_cluster=cluster))
