"""Row locks on PostgreSQL: one order for every writer, a real deadlock retried inside the service, and a node step
whose provider call outlives its lease (real time, real threads) leaving no twin."""

import threading
import time
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction

from nodeclusters import node_steps, reconciler, services
from nodeclusters.choices import ActionState, NodeState
from nodeclusters.models import Action, NodeCluster
from nodeclusters.services.locks import retried_atomic
from providers import registry
from tests import factories
from tests.support.clouds import TwinningCloud
from tests.support.engine import wait_until

pytestmark = pytest.mark.integration
CONTEXT = factories.CONTEXT


def in_thread(target) -> tuple[threading.Thread, list]:
    """Run `target` on its own connection; its result or exception lands in the returned list."""
    outcome = []

    def run():
        try:
            outcome.append(target())
        except Exception as error:  # handed to the test
            outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # statistics are read once per transaction otherwise
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("operation", ["cancel", "retry"])
def test_cancel_and_retry_lock_the_cluster_before_the_action(postgres, user, catalog, operation):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    if operation == "retry":
        Action.objects.filter(pk=action.pk).update(state=ActionState.FAILED, can_be_retried=True)
    service = services.action_cancel if operation == "cancel" else services.action_retry
    with transaction.atomic():
        NodeCluster.objects.select_for_update().get(pk=cluster.pk)  # a writer of the cluster, e.g. a reconcile
        thread, outcome = in_thread(lambda: service(action_uuid=action.uuid, owner=user, context=CONTEXT))
        wait_until(lambda: waiting_for_a_lock() or outcome, timeout=10, what=f"{operation} to wait for the cluster")
        assert not outcome, outcome
        # The waiting request holds no lock on the action, so this writer can take it as it goes on: on main it
        # held the action and waited for the cluster, and the two deadlocked.
        Action.objects.select_for_update(nowait=True).get(pk=action.pk)
    thread.join(timeout=30)
    assert isinstance(outcome[0], Action), outcome


def test_a_real_deadlock_is_retried_inside_the_service(postgres, user, catalog):
    first = factories.make_cluster(user, name="first")
    second = factories.make_cluster(user, name="second")
    runs = []
    holds_second = threading.Event()

    @retried_atomic
    def locks_first_then_second():
        runs.append(1)
        NodeCluster.objects.select_for_update().get(pk=first.pk)
        if len(runs) == 1:
            holds_second.wait(timeout=10)
        NodeCluster.objects.filter(pk=second.pk).update(nickname="after a retry")
        return len(runs)

    def locks_second_then_first():
        with transaction.atomic():
            NodeCluster.objects.select_for_update().get(pk=second.pk)
            holds_second.set()
            time.sleep(0.3)  # the other transaction waits first, so PostgreSQL picks it as the victim
            NodeCluster.objects.filter(pk=first.pk).update(nickname="the other one")

    service, service_outcome = in_thread(locks_first_then_second)
    other, other_outcome = in_thread(locks_second_then_first)
    service.join(timeout=30)
    other.join(timeout=30)
    assert service_outcome == [2]  # deadlocked once, ran again whole, and succeeded
    assert other_outcome == [None]
    assert NodeCluster.objects.get(pk=second.pk).nickname == "after a retry"


def test_a_deploy_step_holding_past_its_lease_leaves_no_twin(postgres, user, catalog, settings):
    """Real threads and a real lease expiry: the first create blocks until the test lets it go."""
    settings.ENGINE_LEASE_SECONDS = 1
    cloud = TwinningCloud()
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    reconciler.reconcile_node_cluster(cluster.uuid)
    node = cluster.nodes.get()
    let_go, in_create = threading.Event(), threading.Event()

    def slow_provider():
        in_create.set()
        let_go.wait(timeout=30)

    cloud.hold_create(slow_provider)
    with mock.patch.object(registry, "get_driver", return_value=cloud):
        first, first_outcome = in_thread(lambda: node_steps.node_deploy_step(node.uuid))
        assert in_create.wait(timeout=10)
        time.sleep(1.2)  # the first step's lease runs out while the provider still has not answered
        second, second_outcome = in_thread(lambda: node_steps.node_deploy_step(node.uuid))
        second.join(timeout=30)
        assert second_outcome[0].outcome is node_steps.Outcome.DONE, second_outcome
        let_go.set()
        first.join(timeout=30)
        assert first_outcome[0].outcome is node_steps.Outcome.DONE, first_outcome
        assert len(cloud.live()) == 2
        node.refresh_from_db()
        assert node.stray_instance_ids == ["droplet-2"]
        node_steps.node_strays_step(node.uuid)  # what the task handed off after the first step's commit does
    node.refresh_from_db()
    assert (node.state, node.instance_id, node.stray_instance_ids) == (NodeState.DEPLOYED, "droplet-1", [])
    assert cloud.live() == ["droplet-1"]  # one instance survives, the other was destroyed: no twin


def test_nowait_lock_proves_the_order_check_can_fail(postgres, user, catalog):
    """The order test above would notice the old order: a request holding the action refuses a NOWAIT lock."""
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    held = threading.Event()
    release = threading.Event()

    def old_order():
        with transaction.atomic():
            Action.objects.select_for_update().get(pk=action.pk)
            held.set()
            release.wait(timeout=10)

    thread, _ = in_thread(old_order)
    assert held.wait(timeout=10)
    with pytest.raises(DatabaseError), transaction.atomic():
        Action.objects.select_for_update(nowait=True).get(pk=action.pk)
    release.set()
    thread.join(timeout=30)
