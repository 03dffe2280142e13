"""Row locks in one order, and the service transaction that re-runs itself once after a deadlock.

The lock order is: a node cluster, then its actions and nodes. Every service and the reconciler take their row
locks through the helpers below, which read the cluster's id without locking anything and lock the cluster first;
a transaction that locked an action or a node before its cluster could wait on a writer that holds the cluster and
wants that row, and PostgreSQL would answer one of them with a deadlock. Node steps lock no cluster: they hold
node rows (one, or a batch of one cluster's nodes in uuid order) and then those nodes' own actions and steps, and
never wait for a cluster while holding them.

Every row lock here is `FOR NO KEY UPDATE` (`no_key=True`): no writer changes a primary key, and a plain `FOR
UPDATE` would also block the foreign-key checks of rows inserted meanwhile (a log line on a locked action, a step of
a locked node), turning a node step that logs while it holds its node into one side of a deadlock.
"""

import functools
import logging
import random
import time

from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet

from nodeclusters.exceptions import ObjectNotFound
from nodeclusters.models import Action, Node, NodeCluster, Webhook

logger = logging.getLogger(__name__)

#: PostgreSQL's serialization_failure and deadlock_detected: the transaction was rolled back whole and running it
#: again is the documented answer.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def is_retryable(error: BaseException) -> bool:
    """Whether a database error is a deadlock or serialization failure (the whole transaction may run again)."""
    cause = error.__cause__
    return getattr(cause, "pgcode", None) in RETRYABLE_SQLSTATES or getattr(cause, "sqlstate", None) in (
        RETRYABLE_SQLSTATES
    )


def retried_atomic(func=None, *, attempts: int = 2):
    """`transaction.atomic` for a service: after a deadlock or serialization failure the whole block runs again.

    Once by default, before the caller sees an error. Re-running is only safe because everything a service does
    happens inside its transaction: rows, events (the outbox) and the engine hand-offs (`on_commit` callbacks,
    discarded with the rolled-back attempt). Inside a caller's transaction it is a plain savepoint: only the
    outermost transaction can be run again.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if connection.in_atomic_block:
                with transaction.atomic():
                    return function(*args, **kwargs)
            for attempt in range(1, attempts + 1):
                try:
                    with transaction.atomic():
                        return function(*args, **kwargs)
                except OperationalError as error:
                    if attempt >= attempts or not is_retryable(error):
                        raise
                    logger.warning(
                        "%s: %s; running the transaction again (attempt %d of %d)",
                        function.__qualname__,
                        str(error).splitlines()[0],
                        attempt + 1,
                        attempts,
                    )
                    # A short random pause, so two transactions that deadlocked do not meet again in step.
                    time.sleep(random.uniform(0.005, 0.05))
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate(func) if func is not None else decorate


def lock_cluster(
    *, node_cluster_uuid, owner=None, select_related=("region__provider", "node_type__alias_of")
) -> NodeCluster:
    """The cluster, row-locked until the transaction ends; ObjectNotFound if there is none (or not `owner`'s).

    Only the static catalog is joined (the region with its provider, the node type with the type a legacy alias
    stands for, which the preflight reads): rows joined into a locking query are not re-read after the wait.
    """
    clusters = NodeCluster.objects.select_for_update(of=("self",), no_key=True).select_related(*select_related)
    if owner is not None:
        clusters = clusters.filter(owner=owner)
    try:
        return clusters.get(uuid=node_cluster_uuid)
    except NodeCluster.DoesNotExist:
        raise ObjectNotFound() from None


def lock_cluster_for_action(*, action_uuid, owner) -> tuple[Action, NodeCluster | None]:
    """The caller's action and its cluster, both row-locked: the cluster first.

    The action's cluster never changes, so reading its id without a lock and locking the cluster before the action
    is safe, and puts cancel and retry in the same order as every other writer of the cluster.
    """
    found = Action.objects.filter(uuid=action_uuid, owner=owner).values_list("node_cluster_id", flat=True)
    if not found:
        raise ObjectNotFound()
    cluster_id = found[0]
    cluster = None
    if cluster_id is not None:
        cluster = NodeCluster.objects.select_for_update(of=("self",), no_key=True).get(pk=cluster_id)
    action = Action.objects.select_for_update(of=("self",), no_key=True).get(uuid=action_uuid, owner=owner)
    return action, cluster


def lock_node(*, node_uuid, owner) -> tuple[Node, NodeCluster | None]:
    """The caller's node and its cluster, both row-locked: the cluster first (a node's cluster never changes)."""
    found = Node.objects.filter(uuid=node_uuid, owner=owner).values_list("node_cluster_id", flat=True)
    if not found:
        raise ObjectNotFound()
    cluster_id = found[0]
    cluster = None
    if cluster_id is not None:
        cluster = NodeCluster.objects.select_for_update(of=("self",), no_key=True).get(pk=cluster_id)
    try:
        node = (
            Node.objects.select_for_update(of=("self",), no_key=True)
            .select_related("region__provider")
            .get(uuid=node_uuid, owner=owner)
        )
    except Node.DoesNotExist:
        raise ObjectNotFound() from None
    return node, cluster


def lock_cluster_actions(cluster: NodeCluster, *conditions, **filters) -> list[Action]:
    """Row-lock actions of a cluster the caller has locked already (see `lock_cluster`), in a stable order."""
    actions = Action.objects.filter(*conditions, node_cluster=cluster, **filters).order_by("pk")
    return list(actions.select_for_update(of=("self",), no_key=True))


def lock_cluster_nodes(cluster: NodeCluster, *conditions, **filters) -> list[Node]:
    """Row-lock nodes of a cluster the caller has locked already (see `lock_cluster`), in a stable order."""
    nodes = Node.objects.filter(*conditions, node_cluster=cluster, **filters).order_by("pk")
    return list(nodes.select_for_update(of=("self",), no_key=True).only("uuid", "owner", "node_cluster", "state"))


# Webhooks are locked on their own: no transaction holds a webhook's row (or a delivery's) with a cluster's.


def lock_webhook(*, skip_locked: bool = False, **filters) -> Webhook | None:
    """The one webhook matching `filters`, row-locked (None if there is none, or another holds it and
    `skip_locked`)."""
    return (
        Webhook.objects.select_for_update(skip_locked=skip_locked, of=("self",), no_key=True).filter(**filters).first()
    )


def lock_deliveries(deliveries: QuerySet) -> QuerySet:
    """Deliveries row-locked in the order given, skipping those another worker holds."""
    return deliveries.select_for_update(skip_locked=True, of=("self",), no_key=True)
