"""Node cluster services: create, deploy, update (scale, tags, nickname), terminate, Docker upgrade."""

from nodeclusters.choices import (
    NODE_CLUSTER_ALLOWED,
    ActionName,
    EventAction,
    NodeClusterOperation,
    NodeClusterState,
    NodeState,
    allowed_operations,
)
from nodeclusters.exceptions import InvalidRequest, NotSupported, StateConflict
from nodeclusters.models import Action, NodeCluster, NodeType, Region
from nodeclusters.wire import uris
from providers.base import Quota

from .accounts import driver_for_request, drivers_remembered
from .actions import (
    RequestContext,
    action_blocking_scale,
    action_log,
    action_record,
    action_supersede,
    engine_schedule_reconcile,
)
from .events import event_record, events_record, node_cluster_event, node_event
from .locks import lock_cluster, retried_atomic
from .preflight import preflight_quota, preflight_require
from .provider_options import validate_provider_options
from .scaling import bounds_check, control_apply, nodes_scale_in, removal_lock, removal_target

# States in which the engine is idle, so a new desired size makes the cluster `Scaling`.
_SETTLED_STATES = {NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED, NodeClusterState.EMPTY_CLUSTER}


def _check(cluster: NodeCluster, operation: NodeClusterOperation) -> None:
    if cluster.state not in NODE_CLUSTER_ALLOWED[operation]:
        raise StateConflict(
            kind="node cluster",
            operation=str(operation),
            state=cluster.state,
            allowed=allowed_operations(NODE_CLUSTER_ALLOWED, cluster.state),
        )


@retried_atomic
def node_cluster_create(
    *,
    owner,
    name: str,
    node_type: NodeType,
    region: Region,
    context: RequestContext,
    target_num_nodes: int = 1,
    disk: int = 60,
    nickname: str = "",
    tags: list[str] | None = None,
    provider_options: dict | None = None,
    **control,
) -> tuple[NodeCluster, Action]:
    """Create a cluster in `Init`; nothing is deployed until `node_cluster_deploy`. `control`: the owner's
    scale-in policy, bounds and self-repair settings (NodeCluster.CONTROL_FIELDS)."""
    bounds_check(
        target=target_num_nodes,
        min_num_nodes=control.get("min_num_nodes"),
        max_num_nodes=control.get("max_num_nodes"),
    )
    provider = region.provider
    if node_type.provider_id != provider.pk:
        raise InvalidRequest(
            f"Node type {uris.nodetype_uri(node_type.provider.name, node_type.name)} belongs to provider "
            f"'{node_type.provider.name}' but region {uris.region_uri(provider.name, region.name)} belongs to "
            f"'{provider.name}'; pick both from the same provider."
        )
    if not provider.available:
        raise InvalidRequest(f"Provider '{provider.name}' is not available for new node clusters.")
    if not region.available:
        raise InvalidRequest(f"Region {uris.region_uri(provider.name, region.name)} is not available for new nodes.")
    offered = list(region.node_types.filter(available=True).order_by("name").values_list("name", flat=True))
    if node_type.name not in offered or not node_type.available:
        offered_text = ", ".join(uris.nodetype_uri(provider.name, type_name) for type_name in offered) or "none"
        raise InvalidRequest(
            f"Node type {uris.nodetype_uri(provider.name, node_type.name)} is not offered in region "
            f"{uris.region_uri(provider.name, region.name)}. Offered there: {offered_text}."
        )
    provider_options = validate_provider_options(provider_name=provider.name, options=provider_options or {})
    preflight_require(owner=owner, node_type=node_type, region=region, add_nodes=0, new_clusters=1)
    cluster = NodeCluster.objects.create(
        owner=owner,
        name=name,
        nickname=nickname or name,
        node_type=node_type,
        region=region,
        disk=disk,
        target_num_nodes=target_num_nodes,
        tags=list(dict.fromkeys(tags or [])),
        provider_options=provider_options,
        state=NodeClusterState.INIT,
        **control,
    )
    event_record(node_cluster_event(cluster, EventAction.CREATE))
    action = action_record(owner=owner, name=ActionName.NODE_CLUSTER_CREATE, context=context, node_cluster=cluster)
    return cluster, action


def _quota_before(*, node_cluster_uuid, owner, target_num_nodes: int | None = None) -> Quota | None:
    """The owner's account limit in the cluster's region, read from the provider before the service's transaction
    (no provider call ever holds the cluster's row lock); the preflight under the lock compares it with what the
    request adds then. With `target_num_nodes` (a PATCH), only when that would add nodes to a deployed cluster."""
    cluster = NodeCluster.objects.select_related("region__provider").filter(uuid=node_cluster_uuid, owner=owner).first()
    if cluster is None:
        return None
    if target_num_nodes is not None and (
        cluster.state == NodeClusterState.INIT or target_num_nodes <= _staying(cluster)
    ):
        return None
    return preflight_quota(owner=owner, region=cluster.region)


def _staying(cluster: NodeCluster) -> int:
    """The cluster's nodes that are not on their way out."""
    return cluster.nodes.exclude(state__in=[NodeState.TERMINATED, NodeState.TERMINATING]).count()


def node_cluster_deploy(*, node_cluster_uuid, owner, context: RequestContext) -> tuple[NodeCluster, Action]:
    """Start deploying a cluster created in `Init`: the engine creates `target_num_nodes` nodes."""
    with drivers_remembered():  # the quota's read and the preflight under the lock ask for one driver
        quota = _quota_before(node_cluster_uuid=node_cluster_uuid, owner=owner)
        return _node_cluster_deploy(node_cluster_uuid=node_cluster_uuid, owner=owner, context=context, quota=quota)


@retried_atomic
def _node_cluster_deploy(*, node_cluster_uuid, owner, context: RequestContext, quota) -> tuple[NodeCluster, Action]:
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, owner=owner)
    _check(cluster, NodeClusterOperation.DEPLOY)
    preflight_require(
        owner=owner,
        node_type=cluster.node_type,
        region=cluster.region,
        add_nodes=cluster.target_num_nodes,
        quota=quota,
    )
    action = action_record(
        owner=owner,
        name=ActionName.NODE_CLUSTER_DEPLOY,
        context=context,
        node_cluster=cluster,
        asynchronous=True,
        can_be_canceled=True,
        target_num_nodes=cluster.target_num_nodes,
        log=f"Deploying {cluster.target_num_nodes} node(s) of {cluster.node_type.name} in {cluster.region}",
    )
    cluster.state = NodeClusterState.DEPLOYING
    action_supersede(node_cluster=cluster, new_action=action)
    cluster.save(update_fields=["state", "current_action", "updated_at"])
    event_record(node_cluster_event(cluster))
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return cluster, action


def node_cluster_update(*, node_cluster_uuid, owner, target_num_nodes: int | None = None, **changes):
    """Change the desired size, tags, nickname or control settings, or remove named nodes. Returns (cluster, action,
    whether the engine was handed work).

    A new size before deploy only changes the target; afterwards it is a scale, and the latest target wins
    while deploying or scaling. `remove_nodes` (node uuids) are terminated at once, before any node the scale-in
    policy would pick, and the target drops by their number unless `target_num_nodes` is given. A new size may be a
    scale-up: the account's quota is read first, outside the transaction.
    """
    quota = None
    with drivers_remembered():
        if target_num_nodes is not None:
            quota = _quota_before(node_cluster_uuid=node_cluster_uuid, owner=owner, target_num_nodes=target_num_nodes)
        return _node_cluster_update(
            node_cluster_uuid=node_cluster_uuid, owner=owner, target_num_nodes=target_num_nodes, quota=quota, **changes
        )


@retried_atomic
def _node_cluster_update(
    *,
    node_cluster_uuid,
    owner,
    context: RequestContext,
    quota,
    target_num_nodes: int | None = None,
    tags: list[str] | None = None,
    nickname: str | None = None,
    remove_nodes: list[str] | None = None,
    **control,
) -> tuple[NodeCluster, Action, bool]:
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, owner=owner)
    if cluster.state == NodeClusterState.TERMINATED:
        raise StateConflict(kind="node cluster", operation="update", state=cluster.state, allowed=[])
    fields = ["updated_at"]
    logs = []
    removing = []
    if remove_nodes:
        _check(cluster, NodeClusterOperation.SCALE)
        removing = removal_lock(cluster, remove_nodes)
        target_num_nodes = removal_target(cluster, removing=len(removing), requested=target_num_nodes)
    changed = control_apply(cluster, control)
    bounds_check(
        target=cluster.target_num_nodes if target_num_nodes is None else target_num_nodes,
        min_num_nodes=cluster.min_num_nodes,
        max_num_nodes=cluster.max_num_nodes,
    )
    if changed:
        fields.extend(changed)
        logs.append("Set " + ", ".join(f"{name} to {getattr(cluster, name)}" for name in changed))
    if nickname is not None:
        cluster.nickname = nickname
        fields.append("nickname")
        logs.append(f"Nickname set to {nickname!r}")
    if tags is not None:
        cluster.tags = list(dict.fromkeys(tags))
        fields.append("tags")
        # The cluster's tags are its nodes' tags.
        retagged = list(
            cluster.nodes.exclude(state=NodeState.TERMINATED).only("uuid", "owner", "node_cluster", "state")
        )
        cluster.nodes.filter(pk__in=[node.pk for node in retagged]).update(tags=cluster.tags)
        events_record(node_event(node) for node in retagged)
        logs.append("Tags set to " + (", ".join(cluster.tags) or "(none)"))
    scaling = target_num_nodes is not None and target_num_nodes != cluster.target_num_nodes
    if scaling:
        _check(cluster, NodeClusterOperation.SCALE)
        if cluster.state != NodeClusterState.INIT:
            _scale_up_preflight(cluster, owner=owner, target_num_nodes=target_num_nodes, quota=quota)
    asynchronous = (scaling or bool(removing)) and cluster.state != NodeClusterState.INIT
    if removing:
        logs.append("Removing " + ", ".join(uris.node_uri(node.uuid) for node in removing))
    if scaling:
        logs.append(f"Target number of nodes changed from {cluster.target_num_nodes} to {target_num_nodes}")
        cluster.target_num_nodes = target_num_nodes
        fields.append("target_num_nodes")
    action = action_record(
        owner=owner,
        name=ActionName.NODE_CLUSTER_SCALE if asynchronous else ActionName.NODE_CLUSTER_UPDATE,
        context=context,
        node_cluster=cluster,
        asynchronous=asynchronous,
        can_be_canceled=asynchronous,
        target_num_nodes=cluster.target_num_nodes if asynchronous else None,
        log="; ".join(logs) or "Nothing to change",
        waits_for=action_blocking_scale(node_cluster=cluster) if asynchronous else None,
    )
    if removing:
        nodes_scale_in(removing, action)
    if asynchronous:
        if cluster.state in _SETTLED_STATES:
            cluster.state = NodeClusterState.SCALING
            fields.append("state")
        action_supersede(node_cluster=cluster, new_action=action)
        fields.append("current_action")
        engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    cluster.save(update_fields=fields)
    event_record(node_cluster_event(cluster))
    return cluster, action, asynchronous


def _scale_up_preflight(cluster: NodeCluster, *, owner, target_num_nodes: int, quota) -> None:
    """A deployed (or deploying) cluster asked to grow: the nodes it would add must pass the preflight."""
    staying = _staying(cluster)
    if target_num_nodes > staying:
        preflight_require(
            owner=owner,
            node_type=cluster.node_type,
            region=cluster.region,
            add_nodes=target_num_nodes - staying,
            quota=quota,
        )


@retried_atomic
def node_cluster_terminate(*, node_cluster_uuid, owner, context: RequestContext) -> tuple[NodeCluster, Action]:
    """Terminate every node and then the cluster; not reversible. The cluster stays listed once `Terminated`."""
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, owner=owner)
    _check(cluster, NodeClusterOperation.TERMINATE)
    action = action_record(
        owner=owner,
        name=ActionName.NODE_CLUSTER_TERMINATE,
        context=context,
        node_cluster=cluster,
        asynchronous=True,
        target_num_nodes=0,
        log="Terminating the node cluster and all its nodes",
    )
    cluster.state = NodeClusterState.TERMINATING
    cluster.target_num_nodes = 0
    action_supersede(node_cluster=cluster, new_action=action)
    cluster.save(update_fields=["state", "target_num_nodes", "current_action", "updated_at"])
    event_record(node_cluster_event(cluster))
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return cluster, action


@retried_atomic
def node_cluster_docker_upgrade(*, node_cluster_uuid, owner, context: RequestContext) -> tuple[NodeCluster, Action]:
    """Upgrade the Docker engine on every deployed node of the cluster, where the provider can."""
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, owner=owner)
    _check(cluster, NodeClusterOperation.DOCKER_UPGRADE)
    provider_name = cluster.region.provider.name
    if not driver_for_request(owner=owner, provider_name=provider_name).supports_docker_upgrade:
        raise NotSupported(f"Provider '{provider_name}' does not support upgrading Docker on its nodes.")
    action = action_record(
        owner=owner,
        name=ActionName.NODE_CLUSTER_DOCKER_UPGRADE,
        context=context,
        node_cluster=cluster,
        asynchronous=True,
        log="Upgrading Docker on every deployed node",
    )
    upgrading = list(cluster.nodes.filter(state=NodeState.DEPLOYED).only("uuid", "owner", "node_cluster"))
    # Untouched by the engine, so the reconcile schedules their steps now rather than after ENGINE_STUCK_AFTER.
    cluster.nodes.filter(pk__in=[node.pk for node in upgrading]).update(
        state=NodeState.UPGRADING, engine_touched_at=None
    )
    events_record(node_event(node, state=NodeState.UPGRADING) for node in upgrading)
    action_log(action=action, message=f"{len(upgrading)} node(s) queued for upgrade")
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return cluster, action
