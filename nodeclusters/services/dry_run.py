"""`?dry_run=true`: what a create, PATCH, deploy or DELETE of a node cluster would do, without doing it.

The real service runs, with every check it makes (so a dry run refuses exactly what the request would), inside a
transaction that is then rolled back: no action, no event and no engine hand-off survives it (events and hand-offs
are written in the transaction or sent on commit). The plan is read from the rolled-back transaction's view of the
cluster, as the engine's next reconcile would see it; the preflight runs afterwards on the stored state, as the real
request's would, and reports its reasons instead of refusing.
"""

from collections.abc import Callable

from django.db import transaction

from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Node, NodeCluster
from nodeclusters.reconciler import pick_scale_in
from nodeclusters.wire import uris

from .preflight import preflight_check, preflight_deferred
from .scaling import REMOVABLE_STATES


def dry_run(*, owner, write: Callable[[], NodeCluster], node_cluster_uuid=None, creating: bool = False) -> dict:
    """Run `write` (a service call returning the cluster it changed) and roll it back; the answer's body."""
    with transaction.atomic():
        terminating_before = set()
        if node_cluster_uuid is not None:
            terminating = Node.objects.filter(node_cluster_id=node_cluster_uuid, state=NodeState.TERMINATING)
            terminating_before = set(terminating.values_list("pk", flat=True))
        with preflight_deferred():
            cluster = write()
        plan = _plan(cluster, terminating_before)
        node_type, region = cluster.node_type, cluster.region
        transaction.set_rollback(True)
    # The preflight a deploy of a new cluster would meet: its nodes, and the cluster itself against the user limit.
    add_nodes = cluster.target_num_nodes if creating else plan["create"]
    reasons = preflight_check(
        owner=owner, node_type=node_type, region=region, add_nodes=add_nodes, new_clusters=1 if creating else 0
    )
    return {"dry_run": True, "plan": plan, "preflight": {"ok": not reasons, "reasons": reasons}}


def _plan(cluster: NodeCluster, terminating_before: set) -> dict:
    """The nodes the engine would create and terminate for the cluster as the write left it."""
    target = cluster.target_num_nodes
    nodes = list(cluster.nodes.filter(state__in=[*REMOVABLE_STATES, NodeState.TERMINATING]))
    removed = [node for node in nodes if node.state == NodeState.TERMINATING and node.pk not in terminating_before]
    active = [node for node in nodes if node.state != NodeState.TERMINATING]
    create, victims = 0, []
    if cluster.state == NodeClusterState.TERMINATING:
        victims = active
    elif cluster.state != NodeClusterState.INIT:
        difference = len(active) - target
        create = max(0, -difference)
        victims = pick_scale_in(active, difference, cluster.scale_in_policy) if difference > 0 else []
    return {
        "create": create,
        "terminate": [uris.node_uri(node.uuid) for node in [*removed, *victims]],
        "target_num_nodes": target,
    }
