"""Exact control of a cluster's size: the bounds a target must stay in, and the nodes a caller names for removal.

The node cluster services call these under the cluster's row lock, before they write anything, so a refusal
changes nothing.
"""

from django.utils import timezone

from nodeclusters.choices import ActionState, NodeState, ReasonCode, StepKind
from nodeclusters.exceptions import InvalidRequest
from nodeclusters.models import Node, NodeCluster
from nodeclusters.wire import uris

from .events import events_record, node_event
from .locks import lock_cluster_nodes
from .steps import steps_abandoned, steps_start

#: Nodes a caller may name in `remove_nodes`: members that are not on their way out already.
REMOVABLE_STATES = (NodeState.DEPLOYING, NodeState.DEPLOYED, NodeState.UNREACHABLE, NodeState.UPGRADING)


def bounds_check(*, target: int, min_num_nodes: int | None, max_num_nodes: int | None) -> None:
    """InvalidRequest naming the bound when `target` is outside [min_num_nodes, max_num_nodes] (None: unbounded)."""
    if min_num_nodes is not None and max_num_nodes is not None and min_num_nodes > max_num_nodes:
        raise InvalidRequest(
            f"min_num_nodes ({min_num_nodes}) is above max_num_nodes ({max_num_nodes}); "
            "the smallest size cannot be larger than the largest."
        )
    if min_num_nodes is not None and target < min_num_nodes:
        raise InvalidRequest(
            f"target_num_nodes {target} is below the cluster's min_num_nodes ({min_num_nodes}); "
            "ask for at least that many nodes, or lower min_num_nodes (null removes the bound)."
        )
    if max_num_nodes is not None and target > max_num_nodes:
        raise InvalidRequest(
            f"target_num_nodes {target} is above the cluster's max_num_nodes ({max_num_nodes}); "
            "ask for at most that many nodes, or raise max_num_nodes (null removes the bound)."
        )


def control_apply(cluster: NodeCluster, settings: dict) -> list[str]:
    """Set the control fields given in `settings` on the cluster; the names of those that changed."""
    changed = []
    for name in NodeCluster.CONTROL_FIELDS:
        if name in settings and getattr(cluster, name) != settings[name]:
            setattr(cluster, name, settings[name])
            changed.append(name)
    return changed


def removal_lock(cluster: NodeCluster, node_uuids: list[str]) -> list[Node]:
    """The named nodes, row-locked (the caller holds the cluster's lock: cluster first, as everywhere); 400 naming
    every one that is not a live member of this cluster."""
    found = {
        str(node.uuid): node for node in lock_cluster_nodes(cluster, uuid__in=node_uuids, state__in=REMOVABLE_STATES)
    }
    missing = [node_uuid for node_uuid in node_uuids if node_uuid not in found]
    if missing:
        named = ", ".join(uris.node_uri(node_uuid) for node_uuid in missing)
        raise InvalidRequest(
            f"remove_nodes names node(s) that are not live members of this cluster: {named}. "
            "Name nodes listed in the cluster's `nodes` that are not Terminating or Terminated."
        )
    return [found[node_uuid] for node_uuid in node_uuids]


def removal_target(cluster: NodeCluster, *, removing: int, requested: int | None) -> int:
    """The target after removing `removing` named nodes: the given one, which must leave room for them (no more
    than the live nodes that stay), or the current target less their number."""
    staying = cluster.nodes.filter(state__in=REMOVABLE_STATES).count() - removing  # the named ones are among these
    if requested is None:
        return max(0, cluster.target_num_nodes - removing)
    if requested > staying:
        raise InvalidRequest(
            f"target_num_nodes {requested} leaves no room to remove {removing} node(s): {staying} live node(s) "
            f"stay, so the target can be at most {staying}. Leave target_num_nodes out to lower it by {removing}."
        )
    return requested


def nodes_scale_in(nodes: list[Node], action) -> None:
    """Take nodes out for a scale-down on `action` (the reconcile's pick, or the nodes a caller named): they go
    `Terminating` for the engine's terminate steps, with a terminate step each on the action; those that never came
    up end their deploy steps, superseded (or canceled, for a cancel)."""
    node_ids = [node.pk for node in nodes]
    Node.objects.filter(pk__in=node_ids).update(
        state=NodeState.TERMINATING, state_changed_at=timezone.now(), engine_touched_at=None
    )
    _abandon_deploys(nodes, action)
    for node in nodes:
        node.state, node.engine_touched_at = NodeState.TERMINATING, None
    events_record(node_event(node) for node in nodes)
    steps_start(action_id=action.pk if action else None, node_ids=node_ids, step=StepKind.TERMINATE)


def _abandon_deploys(nodes: list[Node], action) -> None:
    """Nodes scaled away before they came up: the work of their (older) action is abandoned for a newer one, or for
    a cancel. Their open create and boot steps end `Canceled`, and the nodes say why (`failure_reason_code`)."""
    abandoned = [node.pk for node in nodes if node.state == NodeState.DEPLOYING]
    if not abandoned:
        return
    canceled = action is not None and action.state == ActionState.CANCELING
    code = ReasonCode.CANCELED if canceled else ReasonCode.SUPERSEDED
    Node.objects.filter(pk__in=abandoned).update(failure_reason_code=code)
    steps_abandoned(
        node_ids=abandoned,
        reason_code=code,
        message="canceled before the node came up" if canceled else "scaled away before the node came up",
    )
