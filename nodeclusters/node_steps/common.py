"""What every node step shares: its outcome, the node's lease (claimed, released, fencing), log lines, loading."""

import datetime
import enum
import functools
import logging
import uuid as uuid_module
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q
from django.utils import timezone

from providers.base import NodeSpec
from tutum_api.logging import bind_log_context

from ..catalog_rows import with_catalog_rows
from ..choices import ACTION_OPEN_STATES, NODE_IN_TRANSIT_STATES
from ..models import Action, ActionLogLine, Node
from ..selectors import UuidList
from ..services.actions import action_log_many, engine_schedule_many, engine_schedule_reconcile
from ..services.events import action_event, event_record, events_record, node_event

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DONE = "done"  # nothing more to do for this node in this step
    WAITING = "waiting"  # the instance is booting; the cluster's poll watches it from here
    BUSY = "busy"  # another task holds the lease; it will carry on
    TRANSIENT = "transient"  # the provider failed in a way worth retrying


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    error: str = ""
    reason_code: str = ""  # the provider error's code (ReasonCode), for a step that gives up after retries


# --- leases and logs -------------------------------------------------------------------------------------------


def _claim(node_uuid, states, **also_set) -> str | None:
    """Take the node's lease if it is in one of `states` (any state for None) and nobody holds it; its token."""
    token = uuid_module.uuid4().hex
    now = timezone.now()
    nodes = Node.objects.filter(pk=node_uuid) if states is None else Node.objects.filter(pk=node_uuid, state__in=states)
    claimed = nodes.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_token=token,
        lease_until=now + datetime.timedelta(seconds=settings.ENGINE_LEASE_SECONDS),
        engine_touched_at=now,
        **also_set,
    )
    return token if claimed else None


def _claim_many(node_uuids, states, **also_set) -> str | None:
    """`_claim` for several nodes in one UPDATE, under one token: the token if it took any (`_load_claimed` loads
    them). Each node's lease is its own all the same: another task's claim of one takes that one alone."""
    token = uuid_module.uuid4().hex
    now = timezone.now()
    claimed = (
        Node.objects.filter(pk__in=list(node_uuids), state__in=states)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            lease_token=token,
            lease_until=now + datetime.timedelta(seconds=settings.ENGINE_LEASE_SECONDS),
            engine_touched_at=now,
            **also_set,
        )
    )
    return token if claimed else None


def _renew_many(node_uuids, token: str) -> set:
    """Extend the lease of those of the nodes this step still holds by another ENGINE_LEASE_SECONDS: their ids."""
    node_uuids = list(node_uuids)
    until = timezone.now() + datetime.timedelta(seconds=settings.ENGINE_LEASE_SECONDS)
    renewed = Node.objects.filter(pk__in=node_uuids, lease_token=token).update(lease_until=until)
    if renewed == len(node_uuids):
        return set(node_uuids)
    return set(Node.objects.filter(pk__in=node_uuids, lease_token=token).values_list("pk", flat=True))


def _release(node_uuid, token: str) -> None:
    Node.objects.filter(pk=node_uuid, lease_token=token).update(lease_token="", lease_until=None)


def _release_many(node_uuids, token: str) -> None:
    node_uuids = list(node_uuids)
    if node_uuids:
        Node.objects.filter(pk__in=node_uuids, lease_token=token).update(lease_token="", lease_until=None)


def _holding(node_pk, token: str) -> bool:
    """Inside a transaction: whether this step still holds the node's lease, keeping it so until the commit.

    The node's row stays locked, and a claim is an UPDATE of that row, so no other task can take the lease
    between this check and the writes that follow it in the same transaction.
    """
    return Node.objects.select_for_update(of=("self",), no_key=True).filter(pk=node_pk, lease_token=token).exists()


def _not_claimed(node_uuid, states) -> Step:
    """BUSY if the node still needs this step (someone else holds the lease), DONE if it has moved on."""
    still_waiting = Node.objects.filter(pk=node_uuid, state__in=states).exists()
    return Step(Outcome.BUSY if still_waiting else Outcome.DONE)


def _log_actions() -> UuidList:
    """Where a node's log lines go, as a column of the node's row: its own open actions and its cluster's current
    action if that one is open."""
    return UuidList(
        Action.objects.filter(
            Q(node_id=OuterRef("pk")) | Q(pk=OuterRef("node_cluster__current_action_id")), state__in=ACTION_OPEN_STATES
        ).order_by()
    )


def _log_targets(nodes: list[Node]) -> dict:
    """`_log_actions` for nodes loaded without it, in one query for all of them."""
    pks = [node.pk for node in nodes]
    return dict(Node.objects.filter(pk__in=pks).annotate(targets=_log_actions()).values_list("pk", "targets"))


def _log_line(node: Node, message: str) -> str:
    line = f"Node {node.uuid}: {message}"
    logger.info("%s", line, extra={"node_uuid": str(node.uuid), "node_cluster_uuid": str(node.node_cluster_id)})
    return line


class NodeLog:
    """Log lines about one node: to the process log and to the node's open actions and its cluster's current one.

    The actions are looked up at the first line and reused for the next ones, so a step that writes several lines
    pays for the lookup once.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        # A node from `_load` carries them already.
        self._action_ids: list | None = getattr(node, "log_action_ids", None)

    def __call__(self, message: str) -> None:
        line = _log_line(self.node, message)
        if self._action_ids is None:
            self._action_ids = _log_targets([self.node])[self.node.pk]
        action_log_many(action_ids=self._action_ids, message=line)


def node_log(node: Node, message: str) -> None:
    """One log line on the node's open actions and on its cluster's current action."""
    NodeLog(node)(message)


def nodes_log(lines: list[tuple[Node, str]]) -> None:
    """A line for each of many nodes, as `node_log` writes it, with one lookup and one insert for all of them (no
    lookup for nodes from `_load`, which carry their log's actions)."""
    targets = {node.pk: node.log_action_ids for node, _ in lines if hasattr(node, "log_action_ids")}
    missing = [node for node, _ in lines if node.pk not in targets]
    if missing:
        targets.update(_log_targets(missing))
    rows = []
    for node, message in lines:
        line = _log_line(node, message)
        rows += [ActionLogLine(action_id=action_pk, message=line) for action_pk in targets[node.pk]]
    ActionLogLine.objects.bulk_create(rows)


def _end_node_actions(node: Node, *, state: str, reason_code: str = "") -> list:
    """In the caller's transaction: end the node's own open actions in `state` (a failed one with `reason_code`),
    with their events; their ids.

    Called with the node's row locked (a node step's fenced write): a node, then its own actions.
    """
    open_actions = list(
        Action.objects.select_for_update(of=("self",), no_key=True)
        .filter(node_id=node.pk, state__in=ACTION_OPEN_STATES)
        .order_by("pk")
        .only("uuid", "owner", "object_uri")
    )
    Action.objects.filter(pk__in=[action.pk for action in open_actions]).update(
        state=state, end_date=timezone.now(), can_be_canceled=False, reason_code=reason_code
    )
    events_record(action_event(action, state=state) for action in open_actions)
    return [action.pk for action in open_actions]


def _finish_node_actions(
    node: Node, *, token: str, state: str, message: str, reason_code: str = "", on_ended=None
) -> list | None:
    """End the node's own open actions, if this step still holds the node's lease: their ids, None if it lost it.

    `on_ended(ids)` runs in the same transaction (a step recording its outcome on them).
    """
    with transaction.atomic():
        if not _holding(node.pk, token):
            return None
        ended = _end_node_actions(node, state=state, reason_code=reason_code)
        if on_ended is not None:
            on_ended(ended)
    action_log_many(action_ids=ended, message=message)
    return ended


def _lost_lease(node: Node, what: str) -> None:
    node_log(node, f"lost the node's lease to another task before {what}; that task carries on with the node")


@functools.cache
def _loading():
    """`_load`'s queryset, built once per process: building it (a join and a subquery) cost more CPU than running
    it, once per node step of a fleet. The catalog rows come from the process's copy (`catalog_rows`)."""
    return Node.objects.select_related("node_cluster").annotate(log_action_ids=_log_actions())


def _load(node_uuid) -> Node:
    """The node with what its steps read, and its cluster and action added to the log lines from here on.

    It comes with the actions its log lines go to (its own open ones and its cluster's current one if open), so a
    step's logging costs no lookup of its own.
    """
    node = with_catalog_rows(_loading().get(pk=node_uuid))
    if node.node_cluster_id:
        bind_log_context(node_cluster_uuid=node.node_cluster_id, action_uuid=node.node_cluster.current_action_id)
    return node


def _load_claimed(node_uuids, token: str) -> list[Node]:
    """`_load` for the nodes of one cluster that `_claim_many` took with `token`, in one query, in the given order."""
    loaded = {node.pk: node for node in _loading().filter(pk__in=list(node_uuids), lease_token=token)}
    nodes = [with_catalog_rows(loaded[pk]) for pk in node_uuids if pk in loaded]
    if nodes and nodes[0].node_cluster_id:
        cluster = nodes[0].node_cluster
        bind_log_context(node_cluster_uuid=cluster.pk, action_uuid=cluster.current_action_id)
    return nodes


def _spec(node: Node) -> NodeSpec:
    cluster = node.node_cluster
    return NodeSpec(
        node_uuid=str(node.uuid),
        cluster_uuid=str(node.node_cluster_id or ""),
        region=node.region.name,
        node_type=node.node_type.provider_node_type,  # a legacy alias ("1gb") is created as today's size
        disk_gb=cluster.disk if cluster else node.disk,
        availability_zone=node.availability_zone.name if node.availability_zone else None,
        provider_options=cluster.provider_options if cluster else {},
    )


def _changed(node: Node, *, failed: bool = False) -> None:
    """A node changed state: let its cluster re-derive its own, once its last node in transit has landed.

    Reconciling after every node would make N reconciles of N nodes each, queued on one row lock. The count runs
    after this node's update has committed, so of nodes landing together the last one always sees the others
    done. A failure reconciles at once: the failed node needs a replacement and its clean-up scheduled.
    """
    _clusters_changed([node.node_cluster_id], failed=[node.node_cluster_id] if failed else [])


def _clusters_changed(cluster_uuids, *, failed=()) -> None:
    """`_changed` for the nodes of many clusters at once (a region's poll): one query finds which clusters still
    have nodes in transit, and the reconciles of the others (and of every cluster with a failed node) go to the
    broker as one batch. Called after the nodes' updates have committed."""
    failed = {pk for pk in failed if pk}
    landed = {pk for pk in cluster_uuids if pk} - failed
    if landed:
        landed -= set(
            Node.objects.filter(node_cluster_id__in=landed, state__in=NODE_IN_TRANSIT_STATES)
            .order_by()
            .values_list("node_cluster_id", flat=True)
            .distinct()
        )
    due = sorted(landed | failed, key=str)
    if len(due) == 1:
        engine_schedule_reconcile(node_cluster_uuid=due[0])
    elif due:
        engine_schedule_many([("nodeclusters.reconcile_node_cluster", (pk,)) for pk in due])


def _node_moved(
    node: Node,
    from_state: str,
    to_state: str,
    *,
    token: str,
    end_actions: str | None = None,
    reason_code: str = "",
    on_moved=None,
    **also_set,
) -> list | None:
    """Move a node from one state to the next, with its event, in one transaction; None if it did not move.

    Fenced: only while the step holds the node's lease (`token`) and the node is still in `from_state`. With
    `end_actions`, the node's own open actions end in that state (a failed one with `reason_code`) in the same
    transaction; their ids are returned. `on_moved(ids)` runs in that transaction too (the step's own record).
    """
    with transaction.atomic():
        moved = Node.objects.filter(pk=node.pk, state=from_state, lease_token=token).update(
            state=to_state, state_changed_at=timezone.now(), **also_set
        )
        if not moved:
            return None
        event_record(node_event(node, state=to_state))
        ended = _end_node_actions(node, state=end_actions, reason_code=reason_code) if end_actions else []
        if on_moved is not None:
            on_moved(ended)
        return ended
