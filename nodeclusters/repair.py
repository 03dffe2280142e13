"""Self-repair, as Cluster API's MachineHealthCheck does it: replace the nodes whose instance is gone at the provider
or that stay `Unreachable` longer than their cluster's `unhealthy_timeout`.

A repair creates a new node (`replaces` names the old one) and terminates the old one with `failure_reason_code`
`instance_gone` or `unreachable`; the cluster's target does not change. Each repair is recorded on an engine action
("Node Cluster Repair", not a user's) with a `repair` step per replaced node, beside the replacement's create and
boot steps and the old node's terminate step. Two limits keep it from making things worse:

- the short-circuit: no repair at all while more than `max_unhealthy_percent` of the cluster's nodes are unhealthy
  (unreachable or gone): a provider outage must not start a replacement storm;
- the budget: at most `max_repairs_per_hour` repairs per cluster in any rolling hour.

Either one holding a repair back is written to the action's log (once per change, not per sweep) with a node
cluster event. The sweep runs `repair_node_cluster` for clusters with something to repair or a repair open; it
takes the cluster's row lock first, like every writer of the cluster, so running it twice (or twice at once) is
harmless: the second run sees the first one's rows. Like the reconcile, it never calls a provider.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from .choices import (
    ACTION_OPEN_STATES,
    NODE_UP_STATES,
    UNFINISHED_STEP_STATES,
    ActionName,
    ActionState,
    EventAction,
    NodeClusterState,
    NodeState,
    ReasonCode,
    StepKind,
    StepState,
)
from .exceptions import ObjectNotFound
from .models import Action, ActionLogLine, ActionStep, Node, NodeCluster
from .services.actions import SYSTEM_CONTEXT, action_finish, action_log, action_record, engine_schedule_reconcile
from .services.events import event_record, events_record, node_cluster_event, node_event
from .services.locks import lock_cluster, lock_cluster_actions, retried_atomic
from .services.steps import deploy_steps, most_common_reason
from .wire import uris

#: Clusters the engine is not changing: a repair waits while a user's deploy, scale or terminate is under way.
SETTLED_STATES = frozenset({NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED})
BUDGET_WINDOW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Candidate:
    """A node to replace, and why."""

    node: Node
    reason_code: str
    reason: str


@dataclass
class RepairDecision:
    """What a repair pass may do with a cluster's nodes (`repair_decide`)."""

    total: int
    unhealthy: int
    candidates: list[Candidate]
    repair: list[Candidate]
    short_circuit: bool
    max_unhealthy_percent: int
    max_repairs_per_hour: int
    repairs_last_hour: int

    @property
    def waiting(self) -> list[Candidate]:
        chosen = {candidate.node.uuid for candidate in self.repair}
        return [candidate for candidate in self.candidates if candidate.node.uuid not in chosen]

    def held_message(self) -> str:
        """Why candidates wait (the short-circuit or the budget), as the action log says it; "" if none waits.

        Stable from one pass to the next while nothing changes, so the log gets it once."""
        waiting = self.waiting
        if not waiting:
            return ""
        names = ", ".join(uris.node_uri(candidate.node.uuid) for candidate in waiting)
        if self.short_circuit:
            percent = self.unhealthy * 100 // max(self.total, 1)
            return (
                f"Short-circuit: {self.unhealthy} of {self.total} node(s) unhealthy ({percent}%), more than "
                f"max_unhealthy_percent ({self.max_unhealthy_percent}%); no node is replaced until fewer are "
                f"unhealthy. Waiting: {names}"
            )
        return (
            f"Repair budget spent: {self.repairs_last_hour} repair(s) in the last hour, max_repairs_per_hour is "
            f"{self.max_repairs_per_hour}. Waiting: {names}"
        )


def repair_decide(
    *,
    nodes: list[Node],
    now: datetime.datetime,
    unhealthy_timeout: int,
    max_unhealthy_percent: int,
    max_repairs_per_hour: int,
    repairs_last_hour: int,
) -> RepairDecision:
    """Which of a cluster's up nodes to replace now. Pure (the nodes' state, failure code and `state_changed_at`
    decide), so every limit is unit-tested.

    A node whose instance is gone is a candidate at once; an unreachable one once it has been so for longer than
    `unhealthy_timeout` seconds. Gone nodes go first, then those unreachable the longest.
    """
    gone, unreachable, unhealthy = [], [], 0
    for node in nodes:
        is_gone = node.failure_reason_code == ReasonCode.INSTANCE_GONE and node.state in (
            NodeState.DEPLOYED,
            NodeState.UNREACHABLE,
        )
        if is_gone or node.state == NodeState.UNREACHABLE:
            unhealthy += 1
        if is_gone:
            reason = f"instance {node.instance_id or '(none)'} is gone at the provider"
            gone.append(Candidate(node, ReasonCode.INSTANCE_GONE, reason))
        elif node.state == NodeState.UNREACHABLE:
            seconds = (now - node.state_changed_at).total_seconds()
            if seconds > unhealthy_timeout:
                reason = (
                    f"unreachable for {int(seconds)} s, longer than the cluster's unhealthy_timeout "
                    f"({unhealthy_timeout} s)"
                )
                unreachable.append(Candidate(node, ReasonCode.UNREACHABLE, reason))
    for group in (gone, unreachable):  # the longest unhealthy first
        group.sort(key=lambda candidate: (candidate.node.state_changed_at, str(candidate.node.uuid)))
    candidates = gone + unreachable
    total = len(nodes)
    short_circuit = bool(candidates) and unhealthy * 100 > max_unhealthy_percent * total
    budget = max(max_repairs_per_hour - repairs_last_hour, 0)
    return RepairDecision(
        total=total,
        unhealthy=unhealthy,
        candidates=candidates,
        repair=[] if short_circuit else candidates[:budget],
        short_circuit=short_circuit,
        max_unhealthy_percent=max_unhealthy_percent,
        max_repairs_per_hour=max_repairs_per_hour,
        repairs_last_hour=repairs_last_hour,
    )


@dataclass
class RepairResult:
    """What one repair pass did, for logs and tests."""

    replaced: list = field(default_factory=list)  # (old node uuid, new node uuid)
    held: str = ""  # why candidates wait, if they do
    finished: str = ""  # the state a repair action ended in

    def summary(self) -> dict:
        return {"replaced": len(self.replaced), "held": bool(self.held), "finished": self.finished}


def clusters_due_repair() -> list:
    """Clusters for the sweep to run a repair pass on: those with a node gone or unreachable past their timeout, and
    those with a repair action still open (to end it). One query each; the timeouts are compared here, per node."""
    now = timezone.now()
    rows = (
        Node.objects.filter(node_cluster__state__in=SETTLED_STATES)
        .filter(
            Q(state=NodeState.UNREACHABLE) | Q(state=NodeState.DEPLOYED, failure_reason_code=ReasonCode.INSTANCE_GONE)
        )
        .values_list("node_cluster_id", "failure_reason_code", "state_changed_at", "node_cluster__unhealthy_timeout")
    )
    due = {
        cluster_id
        for cluster_id, code, changed_at, timeout in rows
        if code == ReasonCode.INSTANCE_GONE or (now - changed_at).total_seconds() > timeout
    }
    due.update(
        Action.objects.filter(action=ActionName.NODE_CLUSTER_REPAIR, state__in=ACTION_OPEN_STATES)
        .exclude(node_cluster__isnull=True)
        .values_list("node_cluster_id", flat=True)
    )
    return sorted(due, key=str)


def repair_node_cluster(node_cluster_uuid) -> RepairResult | None:
    """One repair pass over the cluster (see the module's docstring); None if there is no such cluster."""
    try:
        return _repair(node_cluster_uuid)
    except ObjectNotFound:
        return None


@retried_atomic
def _repair(node_cluster_uuid) -> RepairResult:
    now = timezone.now()
    cluster = lock_cluster(node_cluster_uuid=node_cluster_uuid, select_related=("node_type", "region"))
    result = RepairResult()
    action = next(iter(_open_repairs(cluster)), None)
    if action is not None and ActionStep.objects.filter(action=action).exists():
        # A batch of repairs is one action: it ends once its steps have, and later repairs get a new one.
        if not repair_action_settle(action):
            return result  # its repairs are still under way
        result.finished, action = Action.objects.get(pk=action.pk).state, None
    if cluster.state not in SETTLED_STATES:
        if action is not None and cluster.state in (NodeClusterState.TERMINATING, NodeClusterState.TERMINATED):
            action_finish(action=action, state=ActionState.CANCELED, message="The node cluster is being terminated")
            result.finished = ActionState.CANCELED
        return result  # a user's deploy, scale or terminate goes first
    nodes = list(
        cluster.nodes.filter(state__in=NODE_UP_STATES).only(
            "uuid",
            "owner",
            "node_cluster",
            "state",
            "instance_id",
            "failure_reason_code",
            "state_changed_at",
            "availability_zone",
            "created_at",
        )
    )
    repairs_last_hour = ActionStep.objects.filter(
        action__node_cluster=cluster, step=StepKind.REPAIR, start_date__gte=now - BUDGET_WINDOW
    ).count()
    decision = repair_decide(
        nodes=nodes,
        now=now,
        unhealthy_timeout=cluster.unhealthy_timeout,
        max_unhealthy_percent=cluster.max_unhealthy_percent,
        max_repairs_per_hour=cluster.max_repairs_per_hour,
        repairs_last_hour=repairs_last_hour,
    )
    if not decision.candidates:
        if action is not None:  # held before; nothing is unhealthy any more
            action_finish(action=action, state=ActionState.SUCCESS, message="Nothing to repair any more")
            result.finished = ActionState.SUCCESS
        return result
    if action is None:
        action = action_record(
            owner=cluster.owner,
            name=ActionName.NODE_CLUSTER_REPAIR,
            context=SYSTEM_CONTEXT,
            node_cluster=cluster,
            asynchronous=True,
        )
    if decision.repair:
        result.replaced = _replace(cluster, action, decision.repair, nodes, now)
    result.held = decision.held_message()
    if result.held and _last_line(action) != result.held:
        action_log(action=action, message=result.held)
        event_record(node_cluster_event(cluster))  # the cluster's repair is held: watchers learn of it
    return result


def _open_repairs(cluster: NodeCluster) -> list[Action]:
    return lock_cluster_actions(cluster, action=ActionName.NODE_CLUSTER_REPAIR, state__in=ACTION_OPEN_STATES)


def _last_line(action: Action) -> str:
    return ActionLogLine.objects.filter(action=action).order_by("-id").values_list("message", flat=True).first() or ""


def _replace(cluster: NodeCluster, action: Action, repair: list[Candidate], nodes: list[Node], now) -> list:
    """Create a node for each candidate (in the zone least used by the others) and terminate the candidate, with the
    steps, events and log lines that record it; the reconcile then schedules both nodes' steps."""
    from .reconciler import _new_nodes  # the reconcile's rows for new nodes (zones spread alike); it imports us

    old_ids = {candidate.node.pk for candidate in repair}
    new_nodes = _new_nodes(cluster, len(repair), [node for node in nodes if node.pk not in old_ids])
    for new, candidate in zip(new_nodes, repair, strict=True):
        new.replaces_id = candidate.node.pk
    Node.objects.bulk_create(new_nodes)
    for candidate in repair:
        # Whichever of the two it is now: a probe may have moved it between them (probes lock no cluster).
        Node.objects.filter(pk=candidate.node.pk, state__in=[NodeState.DEPLOYED, NodeState.UNREACHABLE]).update(
            state=NodeState.TERMINATING,
            state_changed_at=now,
            engine_touched_at=None,
            failure_reason=candidate.reason,
            failure_reason_code=candidate.reason_code,
        )
        candidate.node.state = NodeState.TERMINATING
    steps = []
    for new, candidate in zip(new_nodes, repair, strict=True):
        old = candidate.node
        steps += [
            ActionStep(
                action=action,
                node=old,
                step=StepKind.REPAIR,
                reason_code=candidate.reason_code,
                start_date=now,
                message=f"{candidate.reason}; replaced by node {uris.node_uri(new.uuid)}",
            ),
            ActionStep(action=action, node=old, step=StepKind.TERMINATE, start_date=now),
            *deploy_steps(action.pk, new.pk, now),
        ]
    ActionStep.objects.bulk_create(steps)
    events_record(
        [
            *(node_event(node, EventAction.CREATE) for node in new_nodes),
            *(node_event(candidate.node) for candidate in repair),
            node_cluster_event(cluster),
        ]
    )
    ActionLogLine.objects.bulk_create(
        ActionLogLine(
            action=action,
            message=f"Replacing node {uris.node_uri(candidate.node.uuid)} ({candidate.reason_code}: "
            f"{candidate.reason}) with node {uris.node_uri(new.uuid)}",
        )
        for new, candidate in zip(new_nodes, repair, strict=True)
    )
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return [(candidate.node.uuid, new.uuid) for new, candidate in zip(new_nodes, repair, strict=True)]


def repair_action_settle(action: Action) -> bool:
    """End a repair action whose steps have all ended: each `repair` step takes the outcome of its replacement's
    deploy, and the action Success, Failed (with the most common reason code) or Canceled (its replacements scaled
    away by a user's action). False, changing nothing, while a step is still under way. In the caller's transaction,
    with the cluster's row locked."""
    steps = list(ActionStep.objects.filter(action=action).only("pk", "node_id", "step", "state", "reason_code"))
    if any(step.state in UNFINISHED_STEP_STATES and step.step != StepKind.REPAIR for step in steps):
        return False
    repairs = [step for step in steps if step.step == StepKind.REPAIR and step.state == StepState.IN_PROGRESS]
    replacement_of = dict(
        Node.objects.filter(
            replaces_id__in=[step.node_id for step in repairs], pk__in={step.node_id for step in steps}
        ).values_list("replaces_id", "pk")
    )
    now = timezone.now()
    for step in repairs:
        new_id = replacement_of.get(step.node_id)
        deploy = [s for s in steps if s.node_id == new_id and s.step in (StepKind.CREATE, StepKind.BOOT)]
        failed = next((s for s in deploy if s.state in (StepState.FAILED, StepState.CANCELED)), None)
        if failed is None:
            step.state, message = StepState.SUCCESS, "its replacement is deployed"
        else:
            step.state, step.reason_code = failed.state, failed.reason_code or step.reason_code
            message = f"its replacement's {failed.step} step ended {failed.state} ({failed.reason_code or 'no code'})"
        ActionStep.objects.filter(pk=step.pk).update(state=step.state, reason_code=step.reason_code, end_date=now)
        ActionLogLine.objects.create(action=action, message=f"Repair of node {uris.node_uri(step.node_id)}: {message}")
    ended = [step for step in steps if step.step == StepKind.REPAIR]
    failed = [step for step in ended if step.state == StepState.FAILED]
    canceled = [step for step in ended if step.state == StepState.CANCELED]
    if failed:
        Action.objects.filter(pk=action.pk).update(reason_code=most_common_reason(step.reason_code for step in failed))
        action_finish(
            action=action, state=ActionState.FAILED, message=f"{len(failed)} of {len(ended)} repair(s) failed"
        )
    elif canceled:
        action_finish(
            action=action, state=ActionState.CANCELED, message=f"{len(canceled)} repair(s) overtaken by a user's action"
        )
    else:
        action_finish(action=action, state=ActionState.SUCCESS, message=f"{len(ended)} node(s) replaced")
    return True


def repair_actions_settle(cluster: NodeCluster) -> None:
    """End the cluster's open repair actions whose steps have all ended (the reconcile calls it once the cluster's
    nodes have landed, so a repair ends with them rather than at the next sweep). Cluster row locked."""
    for action in _open_repairs(cluster):
        if ActionStep.objects.filter(action=action).exists():
            repair_action_settle(action)
