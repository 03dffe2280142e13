"""Actions: recording them, logging to them, ending them, cancel and retry, and the hand-off to the engine."""

import logging
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from nodeclusters.choices import (
    ACTION_CANCELABLE_STATES,
    ACTION_OPEN_STATES,
    ACTION_RETRYABLE_STATES,
    NODE_CLUSTER_ALLOWED,
    NODE_UP_STATES,
    ActionName,
    ActionState,
    EventAction,
    NodeClusterOperation,
    NodeClusterState,
    NodeState,
    allowed_operations,
)
from nodeclusters.exceptions import StateConflict
from nodeclusters.models import Action, ActionLogLine, Node, NodeCluster
from nodeclusters.wire import uris

from .events import action_event, event_record, events_record, node_cluster_event
from .locks import lock_cluster_actions, lock_cluster_for_action, retried_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestContext:
    """Who asked and how: what an Action records about the call that caused it."""

    method: str = ""
    path: str = ""
    body: str = ""
    user_agent: str = ""
    ip: str | None = None
    is_user_action: bool = True


#: The context of work the system starts on its own (sweeps, retries of failed engine steps).
SYSTEM_CONTEXT = RequestContext(is_user_action=False)


def action_log_many(*, action_ids, message: str) -> None:
    """Append one line to the logs of several actions at once."""
    lines = [ActionLogLine(action_id=pk, message=message) for pk in action_ids]
    if len(lines) == 1:
        lines[0].save(force_insert=True)  # one INSERT; bulk_create would wrap even one row in a transaction
    else:
        ActionLogLine.objects.bulk_create(lines)


def action_record(
    *,
    owner,
    name: str,
    context: RequestContext,
    node_cluster: NodeCluster | None = None,
    node: Node | None = None,
    asynchronous: bool = False,
    can_be_canceled: bool = False,
    target_num_nodes: int | None = None,
    log: str = "",
    waits_for: Action | None = None,
    object_uri: str | None = None,
) -> Action:
    """Write the audit row of one call: `Success` at once for synchronous calls, `In progress` otherwise.

    An asynchronous action that must wait for another one on the same cluster starts `Pending`, saying which. The
    object acted on is the node, else the cluster, else `object_uri` (a webhook, a linked account).
    """
    now = timezone.now()
    if node is not None:
        object_uri = uris.node_uri(node.uuid)
    elif node_cluster is not None:
        object_uri = uris.nodecluster_uri(node_cluster.uuid)
    action = Action.objects.create(
        owner=owner,
        action=name,
        method=context.method,
        path=context.path,
        body=context.body,
        user_agent=context.user_agent[:512],
        ip=context.ip,
        object_uri=object_uri,
        node_cluster=node_cluster if node_cluster is not None else (node.node_cluster if node else None),
        node=node,
        state=(ActionState.PENDING if waits_for else ActionState.IN_PROGRESS) if asynchronous else ActionState.SUCCESS,
        start_date=now,
        end_date=None if asynchronous else now,
        is_user_action=context.is_user_action,
        can_be_canceled=can_be_canceled,
        target_num_nodes=target_num_nodes,
    )
    event_record(action_event(action, EventAction.CREATE))
    lines = [log] if log else []
    if waits_for:
        lines.append(f"Waiting for action {uris.action_uri(waits_for.uuid)} ({waits_for.action})")
    ActionLogLine.objects.bulk_create([ActionLogLine(action=action, message=line) for line in lines])
    return action


def action_log(*, action: Action, message: str) -> None:
    """Append one line to an action's logs (a new row: safe beside other writers, cheap however long the log)."""
    ActionLogLine.objects.create(action_id=action.pk, message=message)


def action_finish(*, action: Action, state: str, message: str = "") -> None:
    """End an open action in `state` (Success, Failed or Canceled) with an optional last log line."""
    updates = {"state": state, "end_date": timezone.now(), "can_be_canceled": False}
    # Cluster actions that set a size can be run again (action.md: from Success, Failed or Canceled).
    updates["can_be_retried"] = action.target_num_nodes is not None
    with transaction.atomic():
        ended = Action.objects.filter(pk=action.pk, state__in=ACTION_OPEN_STATES).update(**updates)
        if ended:
            event_record(action_event(action, state=state))
    if ended and message:
        action_log(action=action, message=message)


def action_blocking_scale(*, node_cluster: NodeCluster) -> Action | None:
    """The open Docker upgrade a new size must wait for (nodes are restarting their engine), if any."""
    if not node_cluster.nodes.filter(state=NodeState.UPGRADING).exists():
        return None
    return node_cluster.actions.filter(
        action=ActionName.NODE_CLUSTER_DOCKER_UPGRADE, node__isnull=True, state__in=ACTION_OPEN_STATES
    ).first()


def action_supersede(*, node_cluster: NodeCluster, new_action: Action) -> None:
    """Make `new_action` the cluster's current one; open predecessors end naming the action that overtook them.

    Called with the cluster row locked. Every open action that set the cluster's size is closed, not just the one
    `current_action` names, and they are read after the lock: rows joined into a locking query can be stale.
    """
    overtaken = lock_cluster_actions(
        node_cluster,
        ~Q(pk=new_action.pk),
        node__isnull=True,
        target_num_nodes__isnull=False,
        state__in=ACTION_OPEN_STATES,
    )
    for previous in overtaken:
        action_finish(
            action=previous,
            state=ActionState.CANCELED,
            message=f"Superseded by action {uris.action_uri(new_action.uuid)} ({new_action.action})",
        )
        Action.objects.filter(pk=previous.pk).update(can_be_retried=False)
    node_cluster.current_action = new_action


def engine_schedule(task_name: str, *args: str, countdown: float | None = None) -> None:
    """Hand work to the engine once the current transaction commits (never for a rolled-back request).

    The queue message is only a hint: if the broker is down the request still succeeds, and the periodic sweep
    finds the unconverged cluster or the node still in transit.
    """
    extra = {"countdown": countdown} if countdown else {}
    transaction.on_commit(partial(_enqueue, task_name, [str(arg) for arg in args], **extra))


def engine_schedule_reconcile(*, node_cluster_uuid) -> None:
    """Ask the engine to converge one cluster on its desired state."""
    engine_schedule("nodeclusters.reconcile_node_cluster", node_cluster_uuid)


def engine_schedule_many(calls: list[tuple[str, tuple]]) -> None:
    """`engine_schedule` for many tasks at once (a reconcile's node steps): one hand-off after commit.

    They are published as one batch (one round trip on Redis), and none becomes visible before the last is
    queued. Sent one by one from a worker thread, 200 node steps took seconds to publish: the first ones were
    already running and the publishing thread had to win the GIL back from them for every message.
    """
    if calls:
        transaction.on_commit(partial(_enqueue_many, [(name, [str(arg) for arg in args]) for name, args in calls]))


def _enqueue(task_name: str, args: list[str], countdown: float | None = None) -> None:
    from celery import current_app

    try:
        current_app.send_task(task_name, args=args, countdown=countdown)
    except Exception:  # broker down: the sweep re-enqueues, so the request must not fail now
        logger.warning("could not enqueue %s%s; the sweep will pick it up", task_name, tuple(args))


def _enqueue_many(calls: list[tuple[str, list[str]]]) -> None:
    from celery import current_app

    try:
        # Redis sends the batch as one pipeline, the embedded broker inserts it in one transaction; transports
        # that cannot batch publish each message at once instead.
        with current_app.producer_or_acquire() as producer, producer.batch():
            for task_name, args in calls:
                current_app.send_task(task_name, args=args, producer=producer)
    except Exception:  # as in _enqueue: what was not queued, the sweep finds
        logger.warning(
            "could not enqueue %d engine task(s), %s first; the sweep will pick them up", len(calls), calls[0][0]
        )


@retried_atomic
def action_cancel(*, action_uuid, owner, context: RequestContext) -> Action:
    """Cancel a pending or in-progress action: the cluster keeps the nodes already up and undoes those in flight."""
    action, cluster = lock_cluster_for_action(action_uuid=action_uuid, owner=owner)
    if action.state not in ACTION_CANCELABLE_STATES or not action.can_be_canceled:
        raise StateConflict(
            kind="action",
            operation="cancel",
            state=action.state,
            allowed=["retry"] if action.can_be_retried and action.state in ACTION_RETRYABLE_STATES else [],
        )
    settled = cluster.nodes.filter(state__in=NODE_UP_STATES).count()
    cluster.target_num_nodes = settled
    if cluster.state in (NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED):
        cluster.state = NodeClusterState.SCALING
    cluster.save(update_fields=["target_num_nodes", "state", "updated_at"])
    action.state = ActionState.CANCELING
    action.can_be_canceled = False
    action.save(update_fields=["state", "can_be_canceled"])
    events_record([node_cluster_event(cluster), action_event(action)])
    action_log(action=action, message=f"Cancel requested ({context.method} {context.path}); keeping {settled} node(s)")
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return action


@retried_atomic
def action_retry(*, action_uuid, owner, context: RequestContext) -> Action:
    """Run a finished cluster action again: its target becomes the cluster's desired size once more."""
    action, cluster = lock_cluster_for_action(action_uuid=action_uuid, owner=owner)
    if action.state not in ACTION_RETRYABLE_STATES or not action.can_be_retried or action.target_num_nodes is None:
        raise StateConflict(
            kind="action",
            operation="retry",
            state=action.state,
            allowed=["cancel"] if action.can_be_canceled and action.state in ACTION_CANCELABLE_STATES else [],
        )
    terminating = action.target_num_nodes == 0 and cluster.state == NodeClusterState.TERMINATING
    operation = NodeClusterOperation.SCALE
    if not terminating and cluster.state not in NODE_CLUSTER_ALLOWED[operation]:
        raise StateConflict(
            kind="node cluster",
            operation="retry an action of",
            state=cluster.state,
            allowed=allowed_operations(NODE_CLUSTER_ALLOWED, cluster.state),
        )
    cluster.target_num_nodes = action.target_num_nodes
    if cluster.state in (NodeClusterState.DEPLOYED, NodeClusterState.PARTLY_DEPLOYED, NodeClusterState.EMPTY_CLUSTER):
        cluster.state = NodeClusterState.SCALING
    elif cluster.state == NodeClusterState.INIT:
        cluster.state = NodeClusterState.DEPLOYING
    action_supersede(node_cluster=cluster, new_action=action)
    cluster.save(update_fields=["target_num_nodes", "state", "current_action", "updated_at"])
    action.state = ActionState.IN_PROGRESS
    # The retry is a new run: its start is when failures start counting against its budget again.
    action.start_date = timezone.now()
    action.end_date = None
    action.can_be_retried = False
    action.can_be_canceled = True
    action.save(update_fields=["state", "start_date", "end_date", "can_be_retried", "can_be_canceled"])
    events_record([node_cluster_event(cluster), action_event(action)])
    action_log(action=action, message=f"Retried ({context.method} {context.path})")
    engine_schedule_reconcile(node_cluster_uuid=cluster.uuid)
    return action
