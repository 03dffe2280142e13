"""The level-triggered reconcile of one node cluster: compare desired and actual, act on the difference, derive state.

The database is the source of truth: `target_num_nodes` is the desired state, `Node` rows are the actual state.
Reconcile never calls a provider; it writes `Node` rows (new ones in `Deploying`, surplus ones `Terminating`)
under the cluster's row lock and schedules node steps after commit. Running it twice, or twice at once, is
harmless: the second run sees the first one's rows.
"""

import datetime
import logging
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from tutum_api.logging import bind_log_context

from .choices import (
    ACTION_OPEN_STATES,
    NODE_CLUSTER_BUSY_STATES,
    NODE_IN_TRANSIT_STATES,
    NODE_UP_STATES,
    ActionName,
    ActionState,
    EventAction,
    NodeClusterState,
    NodeState,
    ReasonCode,
    ScaleInPolicy,
)
from .exceptions import ObjectNotFound
from .models import Action, Node, NodeCluster
from .services.actions import action_finish, action_log, engine_schedule_many
from .services.events import action_event, event_record, events_record, node_cluster_event, node_event
from .services.locks import lock_cluster, retried_atomic
from .services.scaling import nodes_scale_in
from .services.steps import most_common_reason, steps_start_deploys

logger = logging.getLogger(__name__)

#: The node step task for each state in transit.
STEP_TASKS = {
    NodeState.DEPLOYING: "nodeclusters.deploy_node",
    NodeState.TERMINATING: "nodeclusters.terminate_node",
    NodeState.UPGRADING: "nodeclusters.upgrade_node_docker",
}
#: The deploy steps of several nodes, one after the other, in one task (`deploy_batch_size`).
DEPLOY_BATCH = "nodeclusters.deploy_nodes"


@dataclass
class ReconcileResult:
    """What one reconcile did, for logs and tests."""

    state: str
    created: list = field(default_factory=list)
    terminating: list = field(default_factory=list)
    scheduled: list = field(default_factory=list)


def failure_budget(target: int) -> int:
    """How many failed nodes one action may replace before it gives up and leaves the cluster as it is."""
    return settings.ENGINE_FAILURE_BUDGET or max(3, target)


#: Who goes first on a scale-down, whatever the policy: nodes that never came up, then unreachable ones.
_SCALE_IN_FIRST = {NodeState.DEPLOYING: 0, NodeState.UNREACHABLE: 1}


def pick_scale_in(active: list[Node], count: int, policy: str = ScaleInPolicy.NEWEST_FIRST) -> list[Node]:
    """Which nodes to remove: those not deployed yet, then unreachable ones, then by the cluster's scale-in policy
    (the newest first, Tutum's behaviour, or the oldest first)."""
    direction = 1 if policy == ScaleInPolicy.OLDEST_FIRST else -1
    ranked = sorted(
        active,
        key=lambda node: (_SCALE_IN_FIRST.get(node.state, 2), direction * node.created_at.timestamp()),
    )
    return ranked[:count]


def derive_state(*, current: str, target: int, active: list[Node], in_transit: int, gave_up: bool) -> str:
    """A cluster's state from its nodes. Pure, so every cell of the table is unit-tested."""
    up = [node for node in active if node.state in NODE_UP_STATES]
    if current == NodeClusterState.TERMINATING:
        return NodeClusterState.TERMINATED if in_transit == 0 and not active else NodeClusterState.TERMINATING
    converged = in_transit == 0 and len(active) == target
    if not converged and not (gave_up and in_transit == 0):
        if current in (NodeClusterState.DEPLOYING, NodeClusterState.INIT):
            return NodeClusterState.DEPLOYING
        return NodeClusterState.SCALING
    if not up:
        return NodeClusterState.EMPTY_CLUSTER
    if len(up) == target and all(node.state != NodeState.UNREACHABLE for node in up):
        return NodeClusterState.DEPLOYED
    return NodeClusterState.PARTLY_DEPLOYED


def _zones_for(cluster: NodeCluster) -> list:
    return list(cluster.node_type.availability_zones.filter(region=cluster.region, available=True).order_by("name"))


def _new_nodes(cluster: NodeCluster, count: int, active: list[Node]) -> list[Node]:
    """Rows for `count` new nodes, spread over the region's zones (the least used first)."""
    zones = _zones_for(cluster)
    used = Counter(node.availability_zone_id for node in active)
    nodes = []
    for _ in range(count):
        zone = min(zones, key=lambda z: (used[z.pk], z.name)) if zones else None
        if zone is not None:
            used[zone.pk] += 1
        node = Node(
            owner_id=cluster.owner_id,
            node_cluster=cluster,
            node_type=cluster.node_type,
            region=cluster.region,
            availability_zone=zone,
            state=NodeState.DEPLOYING,
            tags=list(cluster.tags),
            disk=cluster.disk,
        )
        node.external_fqdn = f"{str(node.uuid)[:8]}.{settings.NODE_FQDN_DOMAIN}"
        nodes.append(node)
    return nodes


def deploy_batch_size() -> int:
    """How many deploy steps one task runs, one after the other: 1 unless many nodes across the fleet wait for their
    instance, and then no more than wait per worker thread (so a batch is never slower than the queue would have
    been), at most ENGINE_DEPLOY_BATCH_MAX."""
    waiting = Node.objects.filter(state=NodeState.DEPLOYING, instance_id="").count()
    per_thread = -(-waiting // max(settings.ENGINE_DEPLOY_PARALLELISM, 1))
    return max(1, min(per_thread, settings.ENGINE_DEPLOY_BATCH_MAX))


def _step_calls(due: list[Node]) -> list[tuple[str, tuple]]:
    """The node step tasks for the nodes due one, the deploy steps in batches (`deploy_batch_size`)."""
    calls = [(STEP_TASKS[node.state], (node.uuid,)) for node in due if node.state != NodeState.DEPLOYING]
    deploying = [node.uuid for node in due if node.state == NodeState.DEPLOYING]
    size = deploy_batch_size() if len(deploying) > 1 else 1
    for start in range(0, len(deploying), size):
        batch = deploying[start : start + size]
        calls.append(
            (STEP_TASKS[NodeState.DEPLOYING], tuple(batch)) if len(batch) == 1 else (DEPLOY_BATCH, tuple(batch))
        )
    return calls


def reconcile_node_cluster(node_cluster_uuid) -> ReconcileResult | None:
    """Take the next steps towards the cluster's desired state; None if there is nothing to reconcile.

    One transaction under the cluster's row lock (taken first, as every writer of the cluster does), run once more
    if PostgreSQL picks it as a deadlock's victim: its node steps are handed off only when it commits.
    """
    try:
        return _reconcile(node_cluster_uuid)
    except ObjectNotFound:
        return None


@retried_atomic
def _reconcile(node_cluster_uuid) -> ReconcileResult | None:
    """`reconcile_node_cluster`'s transaction (ObjectNotFound when there is no such cluster)."""
    now = timezone.now()
    stuck_before = now - datetime.timedelta(seconds=settings.ENGINE_STUCK_AFTER)
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, select_related=("node_type", "region"))
    if cluster.state in (NodeClusterState.INIT, NodeClusterState.TERMINATED):
        return None
    bind_log_context(action_uuid=cluster.current_action_id)
    # Only what the plan needs: a large cluster's full rows would cost more than everything else here.
    live = list(
        cluster.nodes.filter(state__in=[*NODE_IN_TRANSIT_STATES, *NODE_UP_STATES]).only(
            "uuid",
            "owner",
            "node_cluster",
            "state",
            "created_at",
            "engine_touched_at",
            "lease_until",
            "availability_zone",
        )
    )
    active = [node for node in live if node.state != NodeState.TERMINATING]
    action = (
        cluster.current_action
        if cluster.current_action and cluster.current_action.state in ACTION_OPEN_STATES
        else None
    )
    failed = 0
    if action is not None:
        failed = cluster.nodes.filter(created_at__gte=action.start_date).exclude(failure_reason="").count()
    budget = failure_budget(cluster.target_num_nodes) - failed
    budget_left = budget > 0
    if failed:
        # Once nodes fail, replace them only as far as the budget holds even if every node still in
        # flight fails too, so a provider that always fails costs a bounded number of instances.
        budget -= sum(1 for node in active if node.state == NodeState.DEPLOYING)
    result = ReconcileResult(state=cluster.state)

    # A new size waits (its action `Pending`) while a Docker upgrade restarts the nodes' engines.
    upgrading = any(node.state == NodeState.UPGRADING for node in live)
    hold = False
    if action is not None and action.state == ActionState.PENDING:
        if upgrading and action.target_num_nodes:
            hold = True
        else:
            Action.objects.filter(pk=action.pk, state=ActionState.PENDING).update(state=ActionState.IN_PROGRESS)
            action.state = ActionState.IN_PROGRESS
            event_record(action_event(action))
            action_log(action=action, message="Started")

    difference = 0 if hold else len(active) - cluster.target_num_nodes
    if difference < 0 and budget > 0:
        # Never more replacements in flight than failures the action may still afford.
        new_nodes = _new_nodes(cluster, min(-difference, budget), active)
        Node.objects.bulk_create(new_nodes)
        events_record(node_event(node, EventAction.CREATE) for node in new_nodes)
        steps_start_deploys(action_id=action.pk if action else None, node_ids=[node.pk for node in new_nodes])
        active.extend(new_nodes)
        live.extend(new_nodes)
        result.created = [node.uuid for node in new_nodes]
        if action is not None:
            action_log(action=action, message=f"Creating {len(new_nodes)} node(s)")
    elif difference > 0:
        victims = pick_scale_in(active, difference, cluster.scale_in_policy)
        victim_ids = [node.pk for node in victims]
        nodes_scale_in(victims, action)
        active = [node for node in active if node.pk not in set(victim_ids)]
        result.terminating = victim_ids
        if action is not None:
            action_log(action=action, message=f"Terminating {len(victims)} node(s)")

    # Schedule a step for every node in transit that no task has touched lately (new, or its task was lost).
    due = [
        node
        for node in live
        if node.state in NODE_IN_TRANSIT_STATES
        and (node.engine_touched_at is None or node.engine_touched_at < stuck_before)
        and (node.lease_until is None or node.lease_until < now)
    ]
    if due:
        Node.objects.filter(pk__in=[node.pk for node in due]).update(engine_touched_at=now)
        engine_schedule_many(_step_calls(due))
        result.scheduled = [node.uuid for node in due]

    in_transit = sum(1 for node in live if node.state in NODE_IN_TRANSIT_STATES)
    gave_up = not hold and not budget_left and len(active) < cluster.target_num_nodes
    state = derive_state(
        current=cluster.state,
        target=cluster.target_num_nodes,
        active=active,
        in_transit=in_transit,
        gave_up=gave_up,
    )
    if hold:
        state = NodeClusterState.SCALING
    fields = ["state", "updated_at"]
    if state in (NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED) and cluster.deployed_datetime is None:
        cluster.deployed_datetime = now
        fields.append("deployed_datetime")
    if state == NodeClusterState.TERMINATED:
        cluster.destroyed_datetime = now
        fields.append("destroyed_datetime")
    changed = state != cluster.state
    cluster.state = state
    cluster.save(update_fields=fields)
    if changed:
        event_record(node_cluster_event(cluster))
    result.state = state

    if action is not None and not hold and state not in NODE_CLUSTER_BUSY_STATES:
        _finish_current_action(cluster, action, state=state, gave_up=gave_up)
    _finish_docker_upgrade(cluster, live)
    if in_transit == 0 and state in (NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED):
        from .repair import repair_actions_settle  # it imports this module

        repair_actions_settle(cluster)  # a repair ends with its nodes' landing, not at the next sweep
    return result


def _finish_current_action(cluster: NodeCluster, action, *, state: str, gave_up: bool) -> None:
    up = cluster.nodes.filter(state__in=NODE_UP_STATES).count()
    if action.state == ActionState.CANCELING:
        action_finish(action=action, state=ActionState.CANCELED, message=f"Canceled; {up} node(s) kept")
    elif gave_up:
        reasons = list(
            cluster.nodes.filter(created_at__gte=action.start_date)
            .exclude(failure_reason="")
            .values_list("uuid", "failure_reason")[:5]
        )
        summary = "; ".join(f"node {node_uuid}: {reason}" for node_uuid, reason in reasons)
        codes = (
            cluster.nodes.filter(created_at__gte=action.start_date)
            .exclude(failure_reason="")
            .values_list("failure_reason_code", flat=True)
        )
        Action.objects.filter(pk=action.pk).update(reason_code=most_common_reason(codes) or ReasonCode.PROVIDER_ERROR)
        action_finish(
            action=action,
            state=ActionState.FAILED,
            message=f"Gave up with {up} of {cluster.target_num_nodes} node(s) deployed ({state}). Failures: {summary}",
        )
    elif state == NodeClusterState.TERMINATED:
        action_finish(action=action, state=ActionState.SUCCESS, message="Node cluster terminated")
    else:
        action_finish(action=action, state=ActionState.SUCCESS, message=f"{state}: {up} node(s) up")


def _finish_docker_upgrade(cluster: NodeCluster, live: list[Node]) -> None:
    """Close the cluster's Docker upgrade actions once none of its nodes is upgrading any more."""
    if any(node.state == NodeState.UPGRADING for node in live):
        return
    for action in cluster.actions.filter(
        Q(action=ActionName.NODE_CLUSTER_DOCKER_UPGRADE), state__in=ACTION_OPEN_STATES, node__isnull=True
    ):
        action_finish(action=action, state=ActionState.SUCCESS, message="Every node upgraded")


def unconverged_cluster_uuids() -> list:
    """Clusters the engine still owes work: busy with no node in transit, or with nodes in transit whose step seems
    lost.

    A busy cluster with nodes in transit is reconciled when its last one lands (`node_steps` see to it), so the
    sweep leaves it alone while they move: re-reconciling every cluster of a fleet converging at once, every sweep,
    would queue a reconcile per cluster behind the work that actually converges them.
    """
    stuck_before = timezone.now() - datetime.timedelta(seconds=settings.ENGINE_STUCK_AFTER)
    in_transit = Node.objects.filter(node_cluster_id=OuterRef("pk"), state__in=NODE_IN_TRANSIT_STATES)
    busy = (
        NodeCluster.objects.filter(state__in=NODE_CLUSTER_BUSY_STATES)
        .exclude(Exists(in_transit))
        .values_list("uuid", flat=True)
    )
    stuck = (
        Node.objects.filter(state__in=NODE_IN_TRANSIT_STATES, node_cluster__isnull=False)
        .filter(Q(engine_touched_at__isnull=True) | Q(engine_touched_at__lt=stuck_before))
        .values_list("node_cluster_id", flat=True)
    )
    return sorted(set(busy) | set(stuck), key=str)


def nodes_to_probe(*, limit: int) -> list:
    """Up to `limit` deployed or unreachable nodes due for a health probe, those probed longest ago first.

    They are stamped as probed now (and not due again until ENGINE_STUCK_AFTER, unless their probe reschedules
    them), so the next sweep takes the next ones: however many nodes never answer, every node's turn comes. The
    probe itself sets when the node is due next (`node_steps.probe_delay`: later and later while it fails).
    """
    now = timezone.now()
    due = list(
        Node.objects.filter(state__in=[NodeState.DEPLOYED, NodeState.UNREACHABLE])
        .filter(Q(next_probe_at__isnull=True) | Q(next_probe_at__lte=now))
        # Among nodes probed as long ago (or never), those seen most recently first: a node that stopped
        # answering waits behind the ones that answer, never the other way round.
        .order_by(F("last_probed_at").asc(nulls_first=True), F("last_seen").desc(nulls_last=True), "pk")
        .values_list("uuid", flat=True)[:limit]
    )
    if due:
        in_flight = now + datetime.timedelta(seconds=settings.ENGINE_STUCK_AFTER)
        Node.objects.filter(pk__in=due).update(last_probed_at=now, next_probe_at=in_flight)
    return due


def nodes_with_strays(*, limit: int = 100) -> list:
    """Nodes with instances made by a step that had lost their lease still to adopt or destroy, and no lease held."""
    now = timezone.now()
    return list(
        Node.objects.exclude(stray_instance_ids=[])
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("uuid", flat=True)[:limit]
    )


def leaked_instances(driver, *, region: str) -> list:
    """Instances in the region tagged as ours that no live node owns: no such node, a terminated one, or a twin."""
    instances = driver.list_nodes(region=region)
    by_node = {}
    node_uuids = [instance.node_uuid for instance in instances if instance.node_uuid]
    for node_uuid, state, instance_id in Node.objects.filter(uuid__in=_valid_uuids(node_uuids)).values_list(
        "uuid", "state", "instance_id"
    ):
        by_node[str(node_uuid)] = (state, instance_id)
    leaks = []
    for instance in instances:
        owner = by_node.get(instance.node_uuid or "")
        if owner is None:
            leaks.append((instance, "no node owns it"))
        elif owner[0] == NodeState.TERMINATED:
            leaks.append((instance, f"its node {instance.node_uuid} is terminated"))
        elif owner[1] and owner[1] != instance.instance_id:
            leaks.append((instance, f"a twin of {owner[1]} for node {instance.node_uuid}"))
    return leaks


def _valid_uuids(values):
    import uuid as uuid_module

    valid = []
    for value in values:
        try:
            valid.append(uuid_module.UUID(value))
        except (ValueError, TypeError):
            continue
    return valid
