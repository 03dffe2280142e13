"""The events outbox: written with the change it describes, in its transaction; sequenced in commit order; pruned."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from nodeclusters import services
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Event
from nodeclusters.reconciler import reconcile_node_cluster
from nodeclusters.services.events import events_pending, events_prune, events_sequence
from tests import factories

CONTEXT = factories.CONTEXT


def _events(**filters) -> list[tuple]:
    return list(
        Event.objects.filter(**filters).order_by("id").values_list("type", "action", "resource_uri", "state", "parents")
    )


def test_create_and_deploy_write_their_events(user, catalog):
    cluster = factories.make_cluster(user, target_num_nodes=2)
    uri = f"/api/v1/nodecluster/{cluster.uuid}/"
    created = _events()
    assert created[0] == ("nodecluster", "create", uri, NodeClusterState.INIT, [])
    assert created[1][:2] == ("action", "create")
    assert created[1][3:] == (ActionState.SUCCESS, [uri])

    factories.deploy(cluster)
    deploy_events = _events()[2:]
    assert ("nodecluster", "update", uri, NodeClusterState.DEPLOYING, []) in deploy_events
    assert [event[:2] for event in deploy_events if event[0] == "action"] == [("action", "create")]
    assert set(Event.objects.values_list("owner_id", flat=True)) == {user.pk}


def test_a_rolled_back_request_emits_nothing(user, catalog):
    cluster = factories.make_cluster(user)
    before = Event.objects.count()

    def failing_request():
        with transaction.atomic():
            services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
            assert Event.objects.count() > before  # written inside the transaction...
            raise RuntimeError("the request fails after the service ran")

    with pytest.raises(RuntimeError):
        failing_request()

    assert Event.objects.count() == before  # ...and gone with it


def test_a_refused_operation_emits_nothing(user, catalog):
    cluster = factories.make_cluster(user)
    before = Event.objects.count()
    with pytest.raises(services.node_clusters.StateConflict):
        services.node_cluster_docker_upgrade(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
    assert Event.objects.count() == before


def test_the_engine_emits_node_events_with_their_cluster_as_parent(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    Event.objects.all().delete()

    result = reconcile_node_cluster(cluster.uuid)

    assert len(result.created) == 2
    node_events = _events(type="node")
    assert {event[2] for event in node_events} == {f"/api/v1/node/{uuid}/" for uuid in result.created}
    assert all(event[1] == "create" and event[3] == NodeState.DEPLOYING for event in node_events)
    assert all(event[4] == [f"/api/v1/nodecluster/{cluster.uuid}/"] for event in node_events)
    # The cluster stays Deploying: no state change, so no cluster event.
    assert _events(type="nodecluster") == []


def test_reconcile_emits_a_cluster_event_only_when_its_state_changes(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    factories.make_node(cluster)
    Event.objects.all().delete()

    reconcile_node_cluster(cluster.uuid)
    assert [event[3] for event in _events(type="nodecluster")] == [NodeClusterState.DEPLOYED]
    assert [(event[1], event[3]) for event in _events(type="action")] == [("update", ActionState.SUCCESS)]

    Event.objects.all().delete()
    reconcile_node_cluster(cluster.uuid)
    assert _events() == []  # converged: nothing changed, nothing emitted


def test_terminating_one_node_emits_node_and_cluster_events(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    node = factories.make_node(cluster)
    reconcile_node_cluster(cluster.uuid)
    Event.objects.all().delete()

    services.node_terminate(node_uuid=node.uuid, owner=user, context=CONTEXT)

    assert ("node", "update", f"/api/v1/node/{node.uuid}/", NodeState.TERMINATING) in [e[:4] for e in _events()]
    assert ("nodecluster", "update") in [e[:2] for e in _events()]


def test_sequences_follow_id_order_and_are_handed_out_once(user, catalog):
    factories.make_cluster(user)
    factories.make_cluster(user, name="second")
    assert events_pending()

    sequenced = events_sequence()

    assert sequenced == Event.objects.count() == 4
    assert not events_pending()
    ids = list(Event.objects.order_by("sequence").values_list("id", flat=True))
    assert ids == sorted(ids)
    assert list(Event.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3, 4]
    assert events_sequence() == 0  # nothing left: running it again changes nothing

    factories.make_cluster(user, name="third")
    events_sequence()
    assert list(Event.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_prune_deletes_only_what_is_past_the_window(user, catalog, settings):
    settings.STREAM_RETENTION_SECONDS = 3600
    factories.make_cluster(user)
    events_sequence()
    old = Event.objects.order_by("id").first()
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(hours=2))

    assert events_prune() == 1
    assert not Event.objects.filter(pk=old.pk).exists()
    assert Event.objects.count() == 1
