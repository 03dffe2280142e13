"""One lock order (a cluster before its actions and nodes) and service transactions that run again after a deadlock."""

import ast
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError, transaction

from nodeclusters import services
from nodeclusters.choices import EventType
from nodeclusters.models import Action, Event
from nodeclusters.services import actions as action_services
from nodeclusters.services import node_clusters as node_cluster_services
from nodeclusters.services.locks import retried_atomic
from tests import factories

CONTEXT = factories.CONTEXT
ROOT = Path(__file__).resolve().parents[2] / "nodeclusters"


class _DeadlockDetected(Exception):
    pgcode = "40P01"  # what psycopg2 says of PostgreSQL's deadlock_detected


def deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = _DeadlockDetected()
    return error


def deadlocking_once(real):
    """`real`, except that its first call fails the way PostgreSQL fails a deadlock's victim (after `real` ran)."""
    calls = []

    def call(*args, **kwargs):
        calls.append(args)
        result = real(*args, **kwargs)
        if len(calls) == 1:
            raise deadlock()
        return result

    return call, calls


@pytest.mark.django_db(transaction=True)
def test_a_deadlocked_service_runs_again_whole_and_answers_once(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    hand_off, calls = deadlocking_once(node_cluster_services.engine_schedule_reconcile)
    events_before = Event.objects.count()
    with (
        mock.patch.object(node_cluster_services, "engine_schedule_reconcile", hand_off),
        mock.patch.object(action_services, "_enqueue") as enqueue,
    ):
        _, action, _ = services.node_cluster_update(
            node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT, target_num_nodes=3
        )
    assert len(calls) == 2  # the whole transaction ran twice...
    assert list(Action.objects.filter(action="Node Cluster Scale").values_list("pk", flat=True)) == [action.pk]
    enqueue.assert_called_once_with("nodeclusters.reconcile_node_cluster", [str(cluster.uuid)])  # ...handed off once
    new_events = list(Event.objects.order_by("id")[events_before:].values_list("type", flat=True))
    # Its events are written once: the new action, the deploy it supersedes, the cluster.
    assert sorted(new_events) == sorted([EventType.ACTION, EventType.ACTION, EventType.NODE_CLUSTER])
    cluster.refresh_from_db()
    assert cluster.target_num_nodes == 3


@pytest.mark.django_db(transaction=True)
def test_a_second_deadlock_is_answered(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    with (
        mock.patch.object(action_services, "action_log", side_effect=deadlock()) as log,
        pytest.raises(OperationalError),
    ):
        services.action_cancel(action_uuid=action.uuid, owner=user, context=CONTEXT)
    assert log.call_count == 2  # one transparent retry, then the error (the API answers 503, nothing changed)
    action.refresh_from_db()
    assert action.state == "In progress"


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried(user, catalog):
    cluster = factories.make_cluster(user)
    with (
        mock.patch.object(node_cluster_services, "action_record", side_effect=OperationalError("disk full")) as record,
        pytest.raises(OperationalError),
    ):
        services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
    assert record.call_count == 1


@pytest.mark.django_db
def test_inside_a_callers_transaction_only_the_caller_can_retry():
    calls = []

    @retried_atomic
    def service():
        calls.append(1)
        raise deadlock()

    with pytest.raises(OperationalError), transaction.atomic():
        service()
    assert len(calls) == 1


def _calls(path: Path, name: str) -> list[str]:
    """The source of every call chain in `path` that calls `name` (e.g. every `....select_for_update(...)`)."""
    tree = ast.parse(path.read_text())
    return [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
    ]


def test_row_locks_are_taken_only_through_the_lock_order_helpers():
    """Services and the reconciler lock rows only with `services/locks.py`, which locks a cluster first."""
    for path in [*sorted((ROOT / "services").glob("*.py")), ROOT / "reconciler.py"]:
        if path.name != "locks.py":
            assert _calls(path, "select_for_update") == [], f"{path.name} locks rows itself"
            assert "@transaction.atomic\n" not in path.read_text(), f"{path.name}: services are @retried_atomic"
    # Node steps lock no cluster: one node, then that node's own actions.
    steps = sorted((ROOT / "node_steps").glob("*.py"))
    assert len(steps) > 1
    for path in steps:
        for call in _calls(path, "select_for_update"):
            assert "NodeCluster" not in call, f"{path.name}: {call}"
