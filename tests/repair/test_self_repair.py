"""Self-repair in the engine (in process, simulated cloud): a node whose instance is deleted behind the server's back
or that stays unreachable is replaced, recorded on an engine action with steps and reason codes; the short-circuit
and the hourly budget hold repairs back, visibly."""

import datetime
from unittest import mock

import pytest
from django.utils import timezone

from nodeclusters import node_steps, repair, tasks
from nodeclusters.choices import ActionName, ActionState, NodeClusterState, NodeState, ReasonCode
from nodeclusters.models import Action, ActionStep, Event, Node
from providers.models import SimulatedInstance
from tests import factories
from tests.api.helpers import hand_offs

from .conftest import converge

pytestmark = pytest.mark.django_db


def deployed(user, nodes: int, **options):
    return converge(factories.deploy(factories.make_cluster(user, target_num_nodes=nodes, **options)).uuid)


def delete_behind_our_back(node) -> None:
    """What deleting the instance in the provider's console does: the server is not told."""
    SimulatedInstance.objects.filter(instance_id=node.instance_id).update(terminated_at=timezone.now())


def repair_action(cluster) -> Action:
    return Action.objects.get(node_cluster=cluster, action=ActionName.NODE_CLUSTER_REPAIR)


def live_instance_ids(cluster) -> set:
    return set(
        SimulatedInstance.objects.filter(cluster_uuid=str(cluster.uuid), terminated_at__isnull=True).values_list(
            "instance_id", flat=True
        )
    )


def test_a_node_whose_instance_was_deleted_at_the_provider_is_replaced(user, catalog, client):
    cluster = deployed(user, 3)
    victim = cluster.nodes.order_by("created_at")[1]
    delete_behind_our_back(victim)

    node_steps.node_health_step(victim.uuid)  # the sweep's probe finds it gone
    victim.refresh_from_db()
    assert (victim.state, victim.failure_reason_code) == (NodeState.UNREACHABLE, ReasonCode.INSTANCE_GONE)
    assert repair.clusters_due_repair() == [cluster.uuid]

    result = repair.repair_node_cluster(cluster.uuid)
    assert [old for old, _ in result.replaced] == [victim.uuid]
    assert repair.repair_node_cluster(cluster.uuid).replaced == []  # run twice: nothing more to do
    cluster = converge(cluster.uuid)

    assert cluster.state == NodeClusterState.DEPLOYED and cluster.target_num_nodes == 3
    victim.refresh_from_db()
    assert victim.state == NodeState.TERMINATED and victim.failure_reason_code == ReasonCode.INSTANCE_GONE
    replacement = Node.objects.get(replaces=victim)
    assert replacement.state == NodeState.DEPLOYED
    up = set(cluster.nodes.filter(state=NodeState.DEPLOYED).values_list("instance_id", flat=True))
    assert len(up) == 3 and up == live_instance_ids(cluster)

    action = repair_action(cluster)
    assert (action.state, action.is_user_action, action.reason_code) == (ActionState.SUCCESS, False, "")
    assert f"Replacing node /api/v1/node/{victim.uuid}/ (instance_gone" in action.logs
    body = client.get(f"/api/v1/action/{action.uuid}/").json()
    assert body["state"] == "Success" and body["reason_code"] is None and body["is_user_action"] is False
    steps = {(step["node"], step["step"]): step for step in body["steps"]}
    old_uri, new_uri = f"/api/v1/node/{victim.uuid}/", f"/api/v1/node/{replacement.uuid}/"
    assert set(steps) == {(old_uri, "repair"), (old_uri, "terminate"), (new_uri, "create"), (new_uri, "boot")}
    assert {step["state"] for step in steps.values()} == {"Success"}
    assert steps[(old_uri, "repair")]["reason_code"] == "instance_gone"
    assert all(step["end_date"] for step in steps.values())
    node_body = client.get(f"/api/v1/node/{victim.uuid}/").json()
    assert node_body["failure_reason_code"] == "instance_gone" and node_body["state"] == "Terminated"
    assert client.get(f"/api/v1/node/{replacement.uuid}/").json()["failure_reason_code"] is None


def test_the_sweep_hands_a_cluster_with_a_gone_node_to_repair(user, catalog, django_capture_on_commit_callbacks):
    cluster = deployed(user, 3)
    victim = cluster.nodes.first()
    delete_behind_our_back(victim)
    with django_capture_on_commit_callbacks() as probe_hand_offs:
        node_steps.node_health_step(victim.uuid)
    assert ("nodeclusters.repair_node_cluster", [str(cluster.uuid)]) in hand_offs(probe_hand_offs)
    with (
        mock.patch.object(tasks.reconcile_node_cluster, "delay"),
        mock.patch.object(tasks.check_node_health, "delay"),
        django_capture_on_commit_callbacks() as sweep_hand_offs,
    ):
        assert tasks.engine_sweep()["repairs"] == 1
    assert hand_offs(sweep_hand_offs) == [("nodeclusters.repair_node_cluster", [str(cluster.uuid)])]


def test_a_node_unreachable_longer_than_the_timeout_is_replaced_and_its_instance_destroyed(user, catalog):
    cluster = deployed(user, 5, unhealthy_timeout=600)  # two of five unreachable: 40%, not more
    late, recent = cluster.nodes.order_by("created_at")[:2]
    now = timezone.now()
    Node.objects.filter(pk=late.pk).update(
        state=NodeState.UNREACHABLE, state_changed_at=now - datetime.timedelta(seconds=700)
    )
    Node.objects.filter(pk=recent.pk).update(
        state=NodeState.UNREACHABLE, state_changed_at=now - datetime.timedelta(seconds=60)
    )

    result = repair.repair_node_cluster(cluster.uuid)
    assert [old for old, _ in result.replaced] == [late.uuid]  # the other one still has time to come back
    cluster = converge(cluster.uuid)

    late.refresh_from_db()
    assert late.state == NodeState.TERMINATED and late.failure_reason_code == ReasonCode.UNREACHABLE
    assert "longer than the cluster's unhealthy_timeout (600 s)" in late.failure_reason
    assert late.instance_id not in live_instance_ids(cluster)  # the unreachable instance is not left running
    assert Node.objects.get(replaces=late).state == NodeState.DEPLOYED
    assert Node.objects.get(pk=recent.pk).state == NodeState.UNREACHABLE
    assert cluster.target_num_nodes == 5 and cluster.nodes.exclude(state=NodeState.TERMINATED).count() == 5
    step = ActionStep.objects.get(action=repair_action(cluster), step="repair")
    assert (step.node_id, step.state, step.reason_code) == (late.pk, "Success", ReasonCode.UNREACHABLE)


def test_half_the_nodes_gone_short_circuits_repair_and_says_so_once(user, catalog):
    cluster = deployed(user, 4)
    gone = list(cluster.nodes.order_by("created_at")[:2])
    for node in gone:
        delete_behind_our_back(node)
        node_steps.node_health_step(node.uuid)
    events_before = Event.objects.filter(type="nodecluster", object_uuid=cluster.uuid).count()

    first = repair.repair_node_cluster(cluster.uuid)
    second = repair.repair_node_cluster(cluster.uuid)  # the next sweep: still held, nothing new to say

    assert first.replaced == [] and second.replaced == []
    assert first.held.startswith("Short-circuit: 2 of 4 node(s) unhealthy (50%), more than max_unhealthy_percent")
    assert not Node.objects.filter(replaces__in=gone).exists()
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.DEPLOYED, NodeState.UNREACHABLE}
    action = repair_action(cluster)
    assert action.state == ActionState.IN_PROGRESS and action.is_user_action is False
    assert action.logs.count("Short-circuit: 2 of 4") == 1
    assert Event.objects.filter(type="nodecluster", object_uuid=cluster.uuid).count() == events_before + 1

    # One instance comes back: 1 of 4 unhealthy is under the limit, so the other one is now replaced.
    SimulatedInstance.objects.filter(instance_id=gone[0].instance_id).update(terminated_at=None)
    node_steps.node_health_step(gone[0].uuid)
    assert Node.objects.get(pk=gone[0].pk).failure_reason_code == ""
    assert [old for old, _ in repair.repair_node_cluster(cluster.uuid).replaced] == [gone[1].uuid]
    converge(cluster.uuid)
    action.refresh_from_db()
    assert action.state == ActionState.SUCCESS and "1 node(s) replaced" in action.logs


def test_the_hourly_budget_holds_further_repairs_until_the_hour_has_passed(user, catalog):
    cluster = deployed(user, 5, max_repairs_per_hour=1)
    first, second = cluster.nodes.order_by("created_at")[:2]
    for node in (first, second):
        delete_behind_our_back(node)
        node_steps.node_health_step(node.uuid)

    result = repair.repair_node_cluster(cluster.uuid)
    assert [old for old, _ in result.replaced] == [first.uuid]
    assert result.held.startswith("Repair budget spent: 0 repair(s) in the last hour, max_repairs_per_hour is 1")
    converge(cluster.uuid)
    assert repair_action(cluster).state == ActionState.SUCCESS  # the batch that ran is done

    held = repair.repair_node_cluster(cluster.uuid)
    assert held.replaced == [] and held.held.startswith("Repair budget spent: 1 repair(s) in the last hour")
    waiting = Action.objects.get(
        node_cluster=cluster, action=ActionName.NODE_CLUSTER_REPAIR, state=ActionState.IN_PROGRESS
    )
    assert "Repair budget spent: 1 repair(s)" in waiting.logs

    ActionStep.objects.filter(step="repair").update(start_date=timezone.now() - datetime.timedelta(minutes=61))
    assert [old for old, _ in repair.repair_node_cluster(cluster.uuid).replaced] == [second.uuid]


def test_repair_waits_while_a_users_scale_is_under_way(user, catalog):
    cluster = deployed(user, 3)
    victim = cluster.nodes.first()
    delete_behind_our_back(victim)
    node_steps.node_health_step(victim.uuid)
    factories.services.node_cluster_update(
        node_cluster_uuid=cluster.uuid, owner=user, context=factories.CONTEXT, target_num_nodes=4
    )
    assert repair.repair_node_cluster(cluster.uuid).replaced == []
    assert not Action.objects.filter(action=ActionName.NODE_CLUSTER_REPAIR).exists()
