"""The engine honours exact control: named nodes go and only they, and a scale-down follows the cluster's policy."""

import datetime

import pytest
from django.utils import timezone

from nodeclusters import reconciler, services
from nodeclusters.choices import NodeClusterState, NodeState, ScaleInPolicy
from nodeclusters.models import Node
from nodeclusters.reconciler import pick_scale_in
from nodeclusters.wire import uris
from tests import factories
from tests.reconciler.conftest import converge, live_instances

pytestmark = pytest.mark.django_db


def deployed_cluster(user, count: int, **options):
    cluster = factories.make_cluster(user, target_num_nodes=count, **options)
    factories.deploy(cluster)
    cluster = converge(cluster.uuid)
    assert cluster.state == NodeClusterState.DEPLOYED
    return cluster, list(Node.objects.filter(node_cluster=cluster).order_by("created_at"))


def update(cluster, **changes):
    return services.node_cluster_update(
        node_cluster_uuid=cluster.uuid, owner=cluster.owner, context=factories.CONTEXT, **changes
    )


class FakeNode:
    def __init__(self, name, state, minutes_ago):
        self.name, self.state, self.uuid = name, state, name
        self.created_at = timezone.now() - datetime.timedelta(minutes=minutes_ago)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ScaleInPolicy.NEWEST_FIRST, ["pending", "lost", "new", "mid"]),
        (ScaleInPolicy.OLDEST_FIRST, ["pending", "lost", "old", "mid"]),
    ],
)
def test_never_up_then_unreachable_then_by_policy(policy, expected):
    nodes = [
        FakeNode("old", NodeState.DEPLOYED, 30),
        FakeNode("mid", NodeState.DEPLOYED, 20),
        FakeNode("new", NodeState.DEPLOYED, 10),
        FakeNode("lost", NodeState.UNREACHABLE, 25),
        FakeNode("pending", NodeState.DEPLOYING, 1),
    ]
    assert [node.name for node in pick_scale_in(nodes, 4, policy)] == expected


def test_named_nodes_and_only_they_are_removed(user, catalog):
    cluster, nodes = deployed_cluster(user, 4)
    doomed = [nodes[1], nodes[2]]  # neither the newest nor the oldest: the policy alone would pick others
    update(cluster, remove_nodes=[str(node.uuid) for node in doomed])
    cluster = converge(cluster.uuid)
    assert cluster.state == NodeClusterState.DEPLOYED
    assert cluster.target_num_nodes == 2
    states = dict(Node.objects.filter(node_cluster=cluster).values_list("uuid", "state"))
    assert {states[node.uuid] for node in doomed} == {NodeState.TERMINATED}
    assert {states[nodes[0].uuid], states[nodes[3].uuid]} == {NodeState.DEPLOYED}
    assert sorted(instance.node_uuid for instance in live_instances(cluster_uuid=str(cluster.uuid))) == sorted(
        [str(nodes[0].uuid), str(nodes[3].uuid)]
    )


def test_named_nodes_go_first_then_the_policy(user, catalog):
    cluster, nodes = deployed_cluster(user, 4, scale_in_policy=ScaleInPolicy.OLDEST_FIRST)
    update(cluster, remove_nodes=[str(nodes[3].uuid)], target_num_nodes=2)
    cluster = converge(cluster.uuid)
    kept = set(Node.objects.filter(node_cluster=cluster, state=NodeState.DEPLOYED).values_list("uuid", flat=True))
    assert kept == {nodes[1].uuid, nodes[2].uuid}  # the named newest, then the oldest by policy


def test_policy_oldest_first_on_a_plain_scale_down(user, catalog):
    cluster, nodes = deployed_cluster(user, 3)
    update(cluster, scale_in_policy=ScaleInPolicy.OLDEST_FIRST)
    update(cluster, target_num_nodes=1)
    cluster = converge(cluster.uuid)
    assert list(Node.objects.filter(node_cluster=cluster, state=NodeState.DEPLOYED).values_list("uuid", flat=True)) == [
        nodes[2].uuid
    ]


def test_removal_while_deploying_does_not_leak(user, catalog):
    cluster = factories.make_cluster(user, target_num_nodes=3)
    factories.deploy(cluster)
    reconciler.reconcile_node_cluster(cluster.uuid)  # rows exist, no instance yet
    doomed = Node.objects.filter(node_cluster=cluster).order_by("created_at").first()
    update(cluster, remove_nodes=[str(doomed.uuid)])
    cluster = converge(cluster.uuid)
    assert cluster.target_num_nodes == 2 and cluster.state == NodeClusterState.DEPLOYED
    assert Node.objects.get(pk=doomed.pk).state == NodeState.TERMINATED
    assert str(doomed.uuid) not in {instance.node_uuid for instance in live_instances()}
    assert uris.node_uri(doomed.uuid) in "".join(
        cluster.actions.order_by("start_date").last().log_lines.values_list("message", flat=True)
    )
