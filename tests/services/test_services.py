"""Services: transactions, hand-offs after commit only, actions recorded, a broker outage never fails a request."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from nodeclusters import reconciler, services
from nodeclusters.choices import ActionState, NodeClusterState
from nodeclusters.exceptions import InvalidRequest, ObjectNotFound, StateConflict
from nodeclusters.models import Action, Node, NodeCluster
from nodeclusters.services import actions as action_services
from nodeclusters.services.events import events_hint
from tests import factories

pytestmark = pytest.mark.django_db

CONTEXT = factories.CONTEXT


def test_deploy_hands_off_to_the_engine_only_after_commit(user, catalog, django_capture_on_commit_callbacks):
    cluster = factories.make_cluster(user)
    with (
        mock.patch.object(action_services, "_enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
        enqueue.assert_not_called()  # still inside the transaction
    # One hand-off to the engine (besides, where Redis is configured, the Stream API's wake-up hint).
    assert len([callback for callback in callbacks if callback is not events_hint]) == 1
    enqueue.assert_called_once_with("nodeclusters.reconcile_node_cluster", [str(cluster.uuid)])


def test_a_rolled_back_request_reaches_no_provider(user, catalog, django_capture_on_commit_callbacks):
    cluster = factories.make_cluster(user)

    def failing_request():
        with transaction.atomic():
            services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
            raise RuntimeError("the request failed after the service ran")

    with (
        mock.patch.object(action_services, "_enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        failing_request()
    assert callbacks == []
    enqueue.assert_not_called()
    cluster.refresh_from_db()
    assert cluster.state == NodeClusterState.INIT
    assert not Action.objects.filter(action="Node Cluster Deploy").exists()


def test_a_broker_outage_does_not_fail_the_request(user, catalog, django_capture_on_commit_callbacks, caplog):
    cluster = factories.make_cluster(user)
    with (
        mock.patch("celery.current_app.send_task", side_effect=ConnectionError("broker down")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        cluster, action = services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
    assert cluster.state == NodeClusterState.DEPLOYING  # accepted; the sweep will find it
    assert action.state == ActionState.IN_PROGRESS
    assert "the sweep will pick it up" in caplog.text


def test_a_broker_outage_loses_no_node_step_a_reconcile_hands_off(
    user, catalog, caplog, django_capture_on_commit_callbacks
):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=3))
    with (
        mock.patch("celery.current_app.send_task", side_effect=ConnectionError("broker down")),
        caplog.at_level("WARNING"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = reconciler.reconcile_node_cluster(cluster.uuid)
    assert len(result.scheduled) == 3  # the rows are written; the steps' messages were not
    assert "could not enqueue 3 engine task(s)" in caplog.text
    # The nodes stay in transit with no task on them; once they count as stuck, the next reconcile sends them again.
    Node.objects.filter(node_cluster=cluster).update(engine_touched_at=timezone.now() - timedelta(hours=1))
    with (
        mock.patch.object(action_services, "_enqueue_many") as enqueue_many,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert len(reconciler.reconcile_node_cluster(cluster.uuid).scheduled) == 3
    [(calls,)] = [call.args for call in enqueue_many.call_args_list]
    assert sorted(calls) == sorted(("nodeclusters.deploy_node", [str(node.uuid)]) for node in cluster.nodes.all())


def test_actions_record_the_call(user, catalog):
    context = services.RequestContext(
        method="POST",
        path="/api/v1/nodecluster/",
        body='{"name": "x"}',
        user_agent="python-tutum/0.21",
        ip="203.0.113.9",
    )
    cluster = factories.make_cluster(user)
    _, action = services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=context)
    action.refresh_from_db()
    assert (action.method, action.path, action.body, action.user_agent, action.ip) == (
        "POST",
        "/api/v1/nodecluster/",
        '{"name": "x"}',
        "python-tutum/0.21",
        "203.0.113.9",
    )
    assert action.object_uri == f"/api/v1/nodecluster/{cluster.uuid}/"
    assert action.is_user_action
    assert action.can_be_canceled
    assert action.end_date is None


def test_someone_elses_cluster_does_not_exist(user, other_user, catalog):
    cluster = factories.make_cluster(user)
    with pytest.raises(ObjectNotFound):
        services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=other_user, context=CONTEXT)
    cluster.refresh_from_db()
    assert cluster.state == NodeClusterState.INIT


def test_a_state_conflict_names_the_state_and_what_is_allowed(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user))
    with pytest.raises(StateConflict) as raised:
        services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
    assert str(raised.value.detail) == (
        "Cannot deploy node cluster in state 'Deploying'. Operations allowed in this state: 'scale', 'terminate'."
    )


def test_create_refuses_a_type_from_another_provider(user, catalog):
    with pytest.raises(InvalidRequest, match="pick both from the same provider"):
        services.node_cluster_create(
            owner=user,
            name="x",
            node_type=factories.node_type("aws", "t2.micro"),
            region=factories.region("digitalocean", "lon1"),
            context=CONTEXT,
        )
    assert not NodeCluster.objects.exists()
