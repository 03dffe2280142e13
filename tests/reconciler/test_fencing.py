"""Fenced node steps: a step whose provider call outlives its lease writes nothing once another task has claimed
the node, and what it created is adopted or destroyed, never left as a twin (the cloud here, like DigitalOcean,
has no idempotency token: asked twice, it makes two instances)."""

from datetime import timedelta
from functools import partial
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from nodeclusters import node_steps, reconciler, services
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, Event, Node
from nodeclusters.services import actions as action_services
from providers import registry
from providers.base import InstanceState
from tests import factories
from tests.support.clouds import TwinningCloud

from .conftest import converge

pytestmark = pytest.mark.django_db
CONTEXT = factories.CONTEXT


@pytest.fixture
def cloud():
    cloud = TwinningCloud()
    with mock.patch.object(registry, "get_driver", return_value=cloud):
        yield cloud


@pytest.fixture
def enqueued():
    """A function returning the engine tasks handed off so far (to run when the test's transaction would commit)."""

    def handed_off() -> list:
        return [
            callback.args
            for _, callback, _ in connection.run_on_commit
            if isinstance(callback, partial) and callback.func is action_services._enqueue
        ]

    return handed_off


def deploying_node(user, target: int = 1) -> Node:
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=target))
    reconciler.reconcile_node_cluster(cluster.uuid)
    return cluster.nodes.get()


def expire_lease(node: Node) -> None:
    Node.objects.filter(pk=node.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def logs(node: Node) -> str:
    return "".join(action.logs for action in Action.objects.filter(node_cluster_id=node.node_cluster_id))


def test_a_create_that_outlives_its_lease_is_destroyed_when_the_next_step_made_its_own(user, catalog, cloud, enqueued):
    node = deploying_node(user)
    second = []

    def lease_expires_and_the_sweep_step_claims_the_node():
        expire_lease(node)
        second.append(node_steps.node_deploy_step(node.uuid))  # finds nothing by tag yet, so it creates

    cloud.hold_create(lease_expires_and_the_sweep_step_claims_the_node)
    first = node_steps.node_deploy_step(node.uuid)

    assert [step.outcome for step in second] == [node_steps.Outcome.DONE]  # deployed on its own instance
    assert first.outcome is node_steps.Outcome.DONE
    assert len(cloud.live()) == 2  # the late create made a second droplet...
    node.refresh_from_db()
    survivor, stray = "droplet-1", "droplet-2"
    assert (node.state, node.instance_id) == (NodeState.DEPLOYED, survivor)  # ...which did not replace the first
    assert node.stray_instance_ids == [stray]  # ...but was handed over, and its settling scheduled
    assert ("nodeclusters.resolve_node_strays", [str(node.uuid)]) in enqueued()
    assert f"lost the node's lease to another task before recording instance {stray}" in logs(node)

    assert node_steps.node_strays_step(node.uuid).outcome is node_steps.Outcome.DONE
    assert cloud.live() == [survivor] and cloud.destroyed == [stray]  # no twin remains
    node.refresh_from_db()
    assert (node.state, node.instance_id, node.stray_instance_ids) == (NodeState.DEPLOYED, survivor, [])
    assert f"destroyed instance {stray}" in logs(node)
    assert reconciler.leaked_instances(cloud, region="lon1") == []


def test_a_create_that_outlives_its_lease_is_kept_when_the_next_step_adopted_it(user, catalog, cloud, enqueued):
    node = deploying_node(user)

    def lease_expires_and_the_sweep_step_claims_the_node():
        expire_lease(node)
        node_steps.node_deploy_step(node.uuid)  # a retry: it finds the instance by its tag and adopts it

    cloud.hold_create(lease_expires_and_the_sweep_step_claims_the_node, after_it_exists=True)
    node_steps.node_deploy_step(node.uuid)

    node.refresh_from_db()
    assert cloud.live() == ["droplet-1"] and cloud.destroyed == []
    assert (node.state, node.instance_id, node.stray_instance_ids) == (NodeState.DEPLOYED, "droplet-1", [])
    assert not any(name == "nodeclusters.resolve_node_strays" for name, _ in enqueued())
    assert "recording instance droplet-1, which that task has adopted" in logs(node)


def test_an_instance_made_after_the_lease_was_lost_is_adopted_by_a_node_still_without_one(
    user, catalog, cloud, enqueued
):
    node = deploying_node(user)

    def lease_expires_and_the_next_step_fails_to_create():
        expire_lease(node)
        cloud.fail_creates = True
        assert node_steps.node_deploy_step(node.uuid).outcome is node_steps.Outcome.TRANSIENT
        cloud.fail_creates = False

    cloud.hold_create(lease_expires_and_the_next_step_fails_to_create)
    node_steps.node_deploy_step(node.uuid)
    node.refresh_from_db()
    assert (node.instance_id, node.stray_instance_ids) == ("", ["droplet-1"])

    events = Event.objects.count()
    node_steps.node_strays_step(node.uuid)
    node.refresh_from_db()
    assert (node.instance_id, node.stray_instance_ids) == ("droplet-1", [])
    assert Event.objects.count() == events + 1  # the node's instance changed: one event, same transaction
    cluster = converge(node.node_cluster_id)  # the next deploy step watches the adopted instance
    node.refresh_from_db()
    assert cluster.state == NodeClusterState.DEPLOYED
    assert (node.state, node.instance_id, cloud.live()) == (NodeState.DEPLOYED, "droplet-1", ["droplet-1"])


def test_an_instance_made_for_a_node_scaled_away_meanwhile_is_destroyed(user, catalog, cloud, enqueued):
    node = deploying_node(user)

    def lease_expires_and_the_node_is_scaled_away():
        expire_lease(node)
        services.node_cluster_update(
            node_cluster_uuid=node.node_cluster_id, owner=user, context=CONTEXT, target_num_nodes=0
        )
        reconciler.reconcile_node_cluster(node.node_cluster_id)
        node_steps.node_terminate_step(node.uuid)  # nothing to destroy yet

    cloud.hold_create(lease_expires_and_the_node_is_scaled_away)
    node_steps.node_deploy_step(node.uuid)
    node.refresh_from_db()
    assert (node.state, node.instance_id, node.stray_instance_ids) == (NodeState.TERMINATED, "", ["droplet-1"])
    node_steps.node_strays_step(node.uuid)
    assert cloud.live() == [] and cloud.destroyed == ["droplet-1"]
    assert converge(node.node_cluster_id).state == NodeClusterState.EMPTY_CLUSTER


def test_settling_strays_waits_for_the_lease(user, catalog, cloud):
    node = deploying_node(user)
    Node.objects.filter(pk=node.pk).update(
        stray_instance_ids=["droplet-9"], lease_token="other", lease_until=timezone.now() + timedelta(seconds=60)
    )
    assert reconciler.nodes_with_strays() == []  # the sweep leaves it to the task holding the node
    assert node_steps.node_strays_step(node.uuid).outcome is node_steps.Outcome.BUSY
    Node.objects.filter(pk=node.pk).update(lease_token="", lease_until=None)
    assert reconciler.nodes_with_strays() == [node.uuid]


def test_an_upgrade_that_lost_its_lease_writes_nothing(user, catalog, cloud, enqueued):
    cluster = converge(factories.deploy(factories.make_cluster(user, target_num_nodes=1)).uuid)
    node = cluster.nodes.get()
    _, action = services.node_docker_upgrade(node_uuid=node.uuid, owner=user, context=CONTEXT)

    def another_task_claims_the_node():
        Node.objects.filter(pk=node.pk).update(lease_token="other", lease_until=timezone.now() + timedelta(60))

    cloud.on_upgrade = another_task_claims_the_node
    assert node_steps.node_upgrade_step(node.uuid).outcome is node_steps.Outcome.DONE
    node.refresh_from_db()
    action.refresh_from_db()
    assert node.state == NodeState.UPGRADING and action.state == ActionState.IN_PROGRESS  # the holder decides
    assert node.lease_token == "other"  # and its lease is left alone
    assert "lost the node's lease to another task before recording its Docker upgrade" in logs(node)


def test_a_terminate_that_lost_its_lease_leaves_the_node_to_the_new_holder(user, catalog, cloud, enqueued):
    cluster = converge(factories.deploy(factories.make_cluster(user, target_num_nodes=1)).uuid)
    node = cluster.nodes.get()
    services.node_terminate(node_uuid=node.uuid, owner=user, context=CONTEXT)

    def another_task_claims_the_node():
        Node.objects.filter(pk=node.pk).update(lease_token="other", lease_until=timezone.now() + timedelta(60))

    cloud.on_destroy = another_task_claims_the_node
    node_steps.node_terminate_step(node.uuid)
    node.refresh_from_db()
    assert node.state == NodeState.TERMINATING
    Node.objects.filter(pk=node.pk).update(lease_token="", lease_until=None)  # the other task died
    node_steps.node_terminate_step(node.uuid)
    node.refresh_from_db()
    assert node.state == NodeState.TERMINATED and cloud.live() == []


def deploying_batch(user, cloud, nodes: int) -> list[Node]:
    """A cluster's nodes planned for a batch of deploy steps, on a cloud whose fresh instances are booting."""
    cloud.create_state = InstanceState.PENDING
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=nodes))
    reconciler.reconcile_node_cluster(cluster.uuid)
    return sorted(cluster.nodes.all(), key=lambda node: str(node.uuid))


def test_a_batch_create_that_outlives_its_lease_is_destroyed_when_the_next_step_made_its_own(
    user, catalog, cloud, enqueued
):
    late, other = deploying_batch(user, cloud, 2)

    def lease_expires_and_the_sweep_step_claims_the_node():
        expire_lease(late)
        assert node_steps.node_deploy_step(late.uuid).outcome is node_steps.Outcome.WAITING  # it creates its own

    cloud.hold_create(lease_expires_and_the_sweep_step_claims_the_node)
    steps = node_steps.nodes_deploy_step([late.uuid, other.uuid])

    assert steps[str(late.uuid)].outcome is node_steps.Outcome.DONE
    assert steps[str(other.uuid)].outcome is node_steps.Outcome.WAITING
    late.refresh_from_db()
    # The sweep's step made droplet-1 and recorded it; the batch's droplet-2 was handed over, not recorded.
    assert (late.instance_id, late.stray_instance_ids) == ("droplet-1", ["droplet-2"])
    assert ("nodeclusters.resolve_node_strays", [str(late.uuid)]) in enqueued()
    assert Node.objects.get(pk=other.pk).instance_id == "droplet-3"
    assert node_steps.node_strays_step(late.uuid).outcome is node_steps.Outcome.DONE
    assert cloud.live() == ["droplet-1", "droplet-3"] and cloud.destroyed == ["droplet-2"]  # no twin remains
    assert not any(node.lease_token for node in Node.objects.filter(pk__in=[late.pk, other.pk]))


def test_a_batch_create_that_outlives_its_lease_is_kept_when_the_next_step_adopted_it(user, catalog, cloud, enqueued):
    late, other = deploying_batch(user, cloud, 2)

    def lease_expires_and_the_sweep_step_claims_the_node():
        expire_lease(late)
        node_steps.node_deploy_step(late.uuid)  # a retry: it finds the instance by its tag and adopts it

    cloud.hold_create(lease_expires_and_the_sweep_step_claims_the_node, after_it_exists=True)
    steps = node_steps.nodes_deploy_step([late.uuid, other.uuid])

    assert {step.outcome for step in steps.values()} == {node_steps.Outcome.DONE, node_steps.Outcome.WAITING}
    late.refresh_from_db()
    assert (late.instance_id, late.stray_instance_ids) == ("droplet-1", [])
    assert cloud.live() == ["droplet-1", "droplet-2"] and cloud.destroyed == []
    assert not any(name == "nodeclusters.resolve_node_strays" for name, _ in enqueued())
    assert "recording instance droplet-1, which that task has adopted" in logs(late)
