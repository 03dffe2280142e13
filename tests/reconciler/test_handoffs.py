"""Work a user asks of nodes that the engine touched moments ago is scheduled at once, not after the stuck delay."""

import pytest
from django.utils import timezone

from nodeclusters import reconciler, services
from nodeclusters.choices import NodeState
from nodeclusters.models import Node
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_cluster(user, catalog):
    """A deployed cluster whose nodes the engine has just landed (so they are not stuck by any measure)."""
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    for _ in range(2):
        factories.make_node(cluster, engine_touched_at=timezone.now())
    reconciler.reconcile_node_cluster(cluster.uuid)
    return cluster


def test_a_cluster_docker_upgrade_is_scheduled_at_once(fresh_cluster, user):
    services.node_cluster_docker_upgrade(node_cluster_uuid=fresh_cluster.uuid, owner=user, context=factories.CONTEXT)

    result = reconciler.reconcile_node_cluster(fresh_cluster.uuid)

    upgrading = set(Node.objects.filter(state=NodeState.UPGRADING).values_list("uuid", flat=True))
    assert len(upgrading) == 2
    assert set(result.scheduled) == upgrading


@pytest.mark.parametrize("operation", [services.node_docker_upgrade, services.node_terminate])
def test_a_node_operation_is_scheduled_at_once(fresh_cluster, user, operation):
    node = Node.objects.filter(node_cluster=fresh_cluster).first()
    operation(node_uuid=node.uuid, owner=user, context=factories.CONTEXT)

    result = reconciler.reconcile_node_cluster(fresh_cluster.uuid)

    assert node.uuid in result.scheduled
