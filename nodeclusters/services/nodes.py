"""Node services: nickname and tags, terminate one node, health check, Docker upgrade."""

from nodeclusters.choices import (
    NODE_ALLOWED,
    ActionName,
    NodeClusterState,
    NodeOperation,
    NodeState,
    allowed_operations,
)
from nodeclusters.exceptions import NotSupported, StateConflict
from nodeclusters.models import Action, Node

from .actions import RequestContext, action_record, engine_schedule, engine_schedule_reconcile
from .events import event_record, node_cluster_event, node_event
from .locks import lock_node, retried_atomic


def _check(node: Node, operation: NodeOperation) -> None:
    if node.state not in NODE_ALLOWED[operation]:
        raise StateConflict(
            kind="node",
            operation=str(operation),
            state=node.state,
            allowed=allowed_operations(NODE_ALLOWED, node.state),
        )


@retried_atomic
def node_update(
    *, node_uuid, owner, context: RequestContext, nickname: str | None = None, tags: list[str] | None = None
) -> tuple[Node, Action]:
    """Rename a node and/or replace its tags."""
    node, _ = lock_node(node_uuid=node_uuid, owner=owner)
    if node.state == NodeState.TERMINATED:
        raise StateConflict(kind="node", operation="update", state=node.state, allowed=[])
    fields, logs = [], []
    if nickname is not None:
        node.nickname = nickname
        fields.append("nickname")
        logs.append(f"Nickname set to {nickname!r}")
    if tags is not None:
        node.tags = list(dict.fromkeys(tags))
        fields.append("tags")
        logs.append("Tags set to " + (", ".join(node.tags) or "(none)"))
    if fields:
        node.save(update_fields=fields)
        event_record(node_event(node))
    action = action_record(
        owner=owner, name=ActionName.NODE_UPDATE, context=context, node=node, log="; ".join(logs) or "Nothing to change"
    )
    return node, action


@retried_atomic
def node_terminate(*, node_uuid, owner, context: RequestContext) -> tuple[Node, Action]:
    """Terminate one node; its cluster's desired size drops by one so the engine does not replace it."""
    node, cluster = lock_node(node_uuid=node_uuid, owner=owner)
    _check(node, NodeOperation.TERMINATE)
    node.state = NodeState.TERMINATING
    # Untouched by the engine, so the reconcile schedules its step now rather than after ENGINE_STUCK_AFTER.
    node.engine_touched_at = None
    node.save(update_fields=["state", "engine_touched_at"])
    event_record(node_event(node))
    action = action_record(
        owner=owner,
        name=ActionName.NODE_TERMINATE,
        context=context,
        node=node,
        asynchronous=True,
        log=f"Terminating node {node.uuid} (instance {node.instance_id or 'none'})",
    )
    if cluster is not None:
        cluster.target_num_nodes = max(cluster.target_num_nodes - 1, 0)
        fields = ["target_num_nodes", "updated_at"]
        if cluster.state in (NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED):
            cluster.state = NodeClusterState.SCALING
            fields.append("state")
        cluster.save(update_fields=fields)
        event_record(node_cluster_event(cluster))
        engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return node, action


@retried_atomic
def node_health_check(*, node_uuid, owner, context: RequestContext) -> tuple[Node, Action]:
    """Ask the provider whether the node is up; it becomes `Deployed` or `Unreachable`."""
    node, _ = lock_node(node_uuid=node_uuid, owner=owner)
    _check(node, NodeOperation.HEALTH_CHECK)
    action = action_record(
        owner=owner,
        name=ActionName.NODE_HEALTH_CHECK,
        context=context,
        node=node,
        asynchronous=True,
        log="Checking health",
    )
    engine_schedule("nodeclusters.check_node_health", node.uuid, action.uuid)
    return node, action


@retried_atomic
def node_docker_upgrade(*, node_uuid, owner, context: RequestContext) -> tuple[Node, Action]:
    """Upgrade the node's Docker engine, where its provider can; the node is `Upgrading` meanwhile."""
    from .accounts import driver_for_request

    node, cluster = lock_node(node_uuid=node_uuid, owner=owner)
    _check(node, NodeOperation.DOCKER_UPGRADE)
    provider_name = node.region.provider.name
    if not driver_for_request(owner=owner, provider_name=provider_name).supports_docker_upgrade:
        raise NotSupported(f"Provider '{provider_name}' does not support upgrading Docker on its nodes.")
    node.state = NodeState.UPGRADING
    node.engine_touched_at = None  # as in node_terminate
    node.save(update_fields=["state", "engine_touched_at"])
    event_record(node_event(node))
    action = action_record(
        owner=owner,
        name=ActionName.NODE_DOCKER_UPGRADE,
        context=context,
        node=node,
        asynchronous=True,
        log=f"Upgrading Docker on node {node.uuid}",
    )
    if cluster is not None:
        engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return node, action
