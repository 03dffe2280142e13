"""The engine's node steps: the only code that calls provider drivers, always outside database transactions.

Each step takes the node's lease first (an atomic conditional UPDATE), so at most one task talks to the provider
about a node at a time; a step killed half-way is picked up again once its lease expires. A lease can expire under
a step that is still waiting for the provider, so whatever a step writes after a provider call is fenced: it
applies only while the node's `lease_token` is still the step's own, and a step that finds its lease taken writes
nothing of its outcome but hands what it created over to the engine (`stray_instance_ids`), which adopts or
destroys it. Steps that hold no lease (the cluster poll, health probes) write only if the node still has the
instance and state they observed. Steps return what to do next and leave scheduling (polls, retries with
backoff) to the Celery tasks that call them.
"""

import datetime
import enum
import logging
import uuid as uuid_module
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, OuterRef, PositiveSmallIntegerField, Q, When
from django.utils import timezone

from providers.base import Instance, InstanceState, NodeSpec, PermanentProviderError, TransientProviderError
from providers.registry import get_driver
from tutum_api.logging import bind_log_context

from .choices import ACTION_OPEN_STATES, NODE_IN_TRANSIT_STATES, ActionState, NodeState
from .models import Action, ActionLogLine, Node, NodeCluster
from .selectors import UuidList
from .services.actions import action_log_many, engine_schedule, engine_schedule_reconcile
from .services.events import action_event, event_record, events_record, node_event

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


def _release(node_uuid, token: str) -> None:
    Node.objects.filter(pk=node_uuid, lease_token=token).update(lease_token="", lease_until=None)


def _holding(node_pk, token: str) -> bool:
    """Inside a transaction: whether this step still holds the node's lease, keeping it so until the commit.

    The node's row stays locked, and a claim is an UPDATE of that row, so no other task can take the lease
    between this check and the writes that follow it in the same transaction.
    """
    return Node.objects.select_for_update(of=("self",)).filter(pk=node_pk, lease_token=token).exists()


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
    """A line for each of many nodes, as `node_log` writes it, with one lookup and one insert for all of them."""
    targets = _log_targets([node for node, _ in lines])
    rows = []
    for node, message in lines:
        line = _log_line(node, message)
        rows += [ActionLogLine(action_id=action_pk, message=line) for action_pk in targets[node.pk]]
    ActionLogLine.objects.bulk_create(rows)


def _end_node_actions(node: Node, *, state: str) -> list:
    """In the caller's transaction: end the node's own open actions in `state`, with their events; their ids.

    Called with the node's row locked (a node step's fenced write): a node, then its own actions.
    """
    open_actions = list(
        Action.objects.select_for_update(of=("self",))
        .filter(node_id=node.pk, state__in=ACTION_OPEN_STATES)
        .order_by("pk")
        .only("uuid", "owner", "object_uri")
    )
    Action.objects.filter(pk__in=[action.pk for action in open_actions]).update(
        state=state, end_date=timezone.now(), can_be_canceled=False
    )
    events_record(action_event(action, state=state) for action in open_actions)
    return [action.pk for action in open_actions]


def _finish_node_actions(node: Node, *, token: str, state: str, message: str) -> bool:
    """End the node's own open actions, if this step still holds the node's lease; False if it lost it."""
    with transaction.atomic():
        if not _holding(node.pk, token):
            return False
        ended = _end_node_actions(node, state=state)
    action_log_many(action_ids=ended, message=message)
    return True


def _lost_lease(node: Node, what: str) -> None:
    node_log(node, f"lost the node's lease to another task before {what}; that task carries on with the node")


def _load(node_uuid) -> Node:
    """The node with what its steps read, and its cluster and action added to the log lines from here on.

    It comes with the actions its log lines go to (its own open ones and its cluster's current one if open), so a
    step's logging costs no lookup of its own.
    """
    node = (
        Node.objects.select_related("node_cluster", "node_type", "region__provider", "availability_zone")
        .annotate(log_action_ids=_log_actions())
        .get(pk=node_uuid)
    )
    if node.node_cluster_id:
        bind_log_context(node_cluster_uuid=node.node_cluster_id, action_uuid=node.node_cluster.current_action_id)
    return node


def _spec(node: Node) -> NodeSpec:
    cluster = node.node_cluster
    return NodeSpec(
        node_uuid=str(node.uuid),
        cluster_uuid=str(node.node_cluster_id or ""),
        region=node.region.name,
        node_type=node.node_type.name,
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
    if not node.node_cluster_id:
        return
    others_in_transit = Node.objects.filter(
        node_cluster_id=node.node_cluster_id, state__in=NODE_IN_TRANSIT_STATES
    ).exists()
    if failed or not others_in_transit:
        engine_schedule_reconcile(node_cluster_uuid=node.node_cluster_id)


# --- steps ------------------------------------------------------------------------------------------------------


def node_deploy_step(node_uuid) -> Step:
    """Create the node's instance (or find the one an earlier attempt made) and wait for it to run."""
    token = _claim(
        node_uuid,
        [NodeState.DEPLOYING],
        attempts=Case(
            When(instance_id="", then=F("attempts") + 1),
            default=F("attempts"),
            output_field=PositiveSmallIntegerField(),
        ),
    )
    if token is None:
        return _not_claimed(node_uuid, [NodeState.DEPLOYING])
    node = _load(node_uuid)
    log = NodeLog(node)
    try:
        driver = get_driver(node.region.provider.name)
        region = node.region.name
        if not node.instance_id:
            # An earlier attempt may have created the instance and died before recording its id; it carries the
            # node's tag. The first attempt has no such instance to find, and saves a provider call per node.
            instance = driver.find_node(node_uuid=str(node.uuid), region=region) if node.attempts > 1 else None
            created = instance is None
            if created:
                log(
                    f"creating a {node.node_type.name} instance in {region}"
                    + (f" ({node.availability_zone.name})" if node.availability_zone else "")
                )
                instance = driver.create_node(_spec(node))
                log(f"instance {instance.instance_id} created ({instance.state})")
            else:
                log(f"found instance {instance.instance_id} made by an earlier attempt; adopting it")
            # Fenced: a create can outlive the lease, and another task may have claimed the node meanwhile (and
            # made or adopted an instance of its own). Never overwrite; hand the instance over instead.
            if not Node.objects.filter(pk=node.pk, lease_token=token, instance_id="").update(
                instance_id=instance.instance_id
            ):
                _instance_orphaned(node, instance.instance_id, created=created)
                return Step(Outcome.DONE)
            node.instance_id = instance.instance_id
        else:
            instance = driver.get_node(instance_id=node.instance_id, region=region)
        if instance is None or instance.is_gone:
            _node_failed(node, f"instance {node.instance_id} disappeared while deploying", token=token)
            return Step(Outcome.DONE)
        if instance.state == InstanceState.RUNNING:
            if _nodes_deployed([(node, instance)], token=token):
                schedule_cluster_poll(node.node_cluster_id)  # its row was busy (or taken): the poll lands it
                return Step(Outcome.WAITING)
            return Step(Outcome.DONE)
        if _timed_out(node):
            reason = f"instance {instance.instance_id} still {instance.state} after {_TIMEOUT_TEXT}"
            _node_failed(node, reason, token=token)
            return Step(Outcome.DONE)
        schedule_cluster_poll(node.node_cluster_id)
        return Step(Outcome.WAITING)
    except TransientProviderError as error:
        log(f"transient provider error: {error}")
        return Step(Outcome.TRANSIENT, str(error))
    except PermanentProviderError as error:
        _node_failed(node, str(error), token=token)
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def _instance_orphaned(node: Node, instance_id: str, *, created: bool) -> None:
    """The step made (or found) `instance_id` but lost the node's lease before recording it.

    Another task holds the node now. A found instance is found again by that task (it carries the node's tag). A
    created one may be the instance that task adopted; if it is not, it goes on the node's `stray_instance_ids`
    and `node_strays_step` adopts it (the node still has none) or destroys it (the node has another): on a
    provider with no idempotency token such as DigitalOcean it would otherwise live on as a twin.
    """
    if not created:
        _lost_lease(node, f"recording instance {instance_id}, which it finds by its tag")
        return
    with transaction.atomic():
        current = (
            Node.objects.select_for_update(of=("self",))
            .filter(pk=node.pk)
            .values_list("instance_id", "stray_instance_ids")
            .first()
        )
        adopted = current is not None and current[0] == instance_id
        if current is not None and not adopted and instance_id not in current[1]:
            Node.objects.filter(pk=node.pk).update(stray_instance_ids=[*current[1], instance_id])
            engine_schedule("nodeclusters.resolve_node_strays", node.uuid)
    if adopted:
        _lost_lease(node, f"recording instance {instance_id}, which that task has adopted")
    else:
        node_log(
            node,
            f"lost the node's lease to another task before recording instance {instance_id}; "
            "handed it over to be adopted or destroyed, never kept as a twin",
        )


_TIMEOUT_TEXT = "the deploy timeout (ENGINE_DEPLOY_TIMEOUT)"


def _timed_out(node: Node) -> bool:
    return (timezone.now() - node.created_at).total_seconds() > settings.ENGINE_DEPLOY_TIMEOUT


def schedule_cluster_poll(node_cluster_uuid) -> None:
    """Look at the cluster's booting instances in ENGINE_POLL_INTERVAL, unless a poll is already scheduled."""
    if node_cluster_uuid is None:
        return
    now = timezone.now()
    interval = settings.ENGINE_POLL_INTERVAL
    claimed = (
        NodeCluster.objects.filter(pk=node_cluster_uuid)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .update(next_poll_at=now + datetime.timedelta(seconds=interval))
    )
    if claimed:
        engine_schedule("nodeclusters.poll_node_cluster", node_cluster_uuid, countdown=interval)


def node_cluster_poll_step(node_cluster_uuid) -> Step:
    """One provider listing for every booting instance of the cluster: deployed, failed, or still booting.

    Polling node by node would cost a task, a lease and a provider call per node per interval; a cluster of
    200 booting nodes needs one listing instead.
    """
    # This poll is running: the next one may be scheduled (whatever the clock skew between ETA and now).
    NodeCluster.objects.filter(pk=node_cluster_uuid).update(next_poll_at=None)
    cluster = NodeCluster.objects.select_related("node_type", "region__provider").filter(pk=node_cluster_uuid).first()
    if cluster is None:
        return Step(Outcome.DONE)
    bind_log_context(action_uuid=cluster.current_action_id)
    # Polled every interval while hundreds boot: read only what deciding and landing a node takes.
    booting = list(
        Node.objects.filter(node_cluster_id=node_cluster_uuid, state=NodeState.DEPLOYING)
        .exclude(instance_id="")
        .only("uuid", "owner", "node_cluster_id", "node_type_id", "instance_id", "created_at", "engine_touched_at")
    )
    if not booting:
        return Step(Outcome.DONE)
    for node in booting:
        node.node_cluster = cluster
        if node.node_type_id == cluster.node_type_id:
            node.node_type = cluster.node_type
    region = cluster.region
    try:
        driver = get_driver(region.provider.name)
        listed = {instance.instance_id: instance for instance in driver.list_nodes(region=region.name)}
        still_booting, running = [], []
        for node in booting:
            instance = listed.get(node.instance_id)
            if instance is None:  # listings can lag behind a create: ask for this one directly
                instance = driver.get_node(instance_id=node.instance_id, region=region.name)
            if instance is None or instance.is_gone:
                _node_failed(node, f"instance {node.instance_id} disappeared while deploying")
            elif instance.state == InstanceState.RUNNING:
                running.append((node, instance))
            elif _timed_out(node):
                _node_failed(node, f"instance {node.instance_id} still {instance.state} after {_TIMEOUT_TEXT}")
            else:
                still_booting.append(node.pk)
        still_booting += _nodes_deployed(running)
    except TransientProviderError as error:
        logger.warning("poll of node cluster %s: transient provider error: %s", node_cluster_uuid, error)
        still_booting = [node.pk for node in booting]
    except PermanentProviderError as error:
        logger.warning("poll of node cluster %s failed: %s; the sweep will retry", node_cluster_uuid, error)
        return Step(Outcome.DONE)
    if still_booting:
        # Touched: a node the poll is watching is not stuck. Once per half the time it takes to count as stuck is
        # enough, and spares rewriting every booting row at every poll.
        now = timezone.now()
        stale = now - datetime.timedelta(seconds=settings.ENGINE_STUCK_AFTER / 2)
        Node.objects.filter(
            Q(engine_touched_at__isnull=True) | Q(engine_touched_at__lt=stale), pk__in=still_booting
        ).update(engine_touched_at=now)
        schedule_cluster_poll(node_cluster_uuid)
        return Step(Outcome.WAITING)
    return Step(Outcome.DONE)


def node_give_up(node_uuid, reason: str) -> None:
    """A step ran out of retries: fail the node (a deploying one is then cleaned up).

    It takes the lease like any step: a node another task holds is that task's to finish.
    """
    token = _claim(node_uuid, [NodeState.DEPLOYING])
    node = _load(node_uuid)
    if token is None:
        node_log(node, f"giving up for now: {reason}; the sweep will try again later")
        return
    try:
        _node_failed(node, reason, token=token)
    finally:
        _release(node_uuid, token)


def _nodes_deployed(running: list[tuple[Node, Instance]], *, token: str | None = None) -> list:
    """Mark the nodes of running instances `Deployed` in one statement, log them in one insert, reconcile once.

    Only nodes still `Deploying` with the instance the caller observed change (one scaled away while booting stays
    `Terminating`), and with `token` (a deploy step) only while the step holds the node's lease: their rows are
    locked first, skipping any that another task holds at that moment. Returns the skipped ones, which are still
    booting as far as the caller knows; the next poll lands them.
    """
    if not running:
        return []
    instances = {node.pk: instance for node, instance in running}
    now = timezone.now()
    fence = {"lease_token": token} if token is not None else {}
    with transaction.atomic():
        locked = (
            Node.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=instances, state=NodeState.DEPLOYING, **fence)
            .order_by("pk")
            .values_list("pk", "instance_id")
        )
        landing = {pk for pk, instance_id in locked if instance_id == instances[pk].instance_id}
        nodes = [node for node, _ in running if node.pk in landing]
        next_probe = now + datetime.timedelta(seconds=settings.ENGINE_HEALTH_CHECK_INTERVAL)
        for node in nodes:
            instance = instances[node.pk]
            node.state = NodeState.DEPLOYED
            node.state_changed_at = node.deployed_datetime = node.last_seen = now
            # A running instance is as good as a probe: the first health check is an interval away.
            node.last_probed_at, node.next_probe_at, node.failed_probes = now, next_probe, 0
            node.public_ip = instance.public_ip
            node.cpu, node.memory = node.node_type.cpu, node.node_type.memory
            node.disk = node.node_cluster.disk if node.node_cluster else node.node_type.disk
            node.docker_version = instance.extra.get("docker_version") or settings.NODE_DOCKER_VERSION
            node.docker_execdriver, node.docker_graphdriver = "native-0.2", "overlay"
        Node.objects.bulk_update(nodes, _DEPLOYED_FIELDS)
        events_record(node_event(node) for node in nodes)
    nodes_log(
        [
            (node, f"instance {node.instance_id} running at {node.public_ip or 'no public IP'}; deployed")
            for node in nodes
        ]
    )
    for node in {node.node_cluster_id: node for node in nodes}.values():
        _changed(node)
    return [pk for pk in instances if pk not in landing]


_DEPLOYED_FIELDS = [
    "state",
    "state_changed_at",
    "deployed_datetime",
    "last_seen",
    "public_ip",
    "cpu",
    "memory",
    "disk",
    "docker_version",
    "docker_execdriver",
    "docker_graphdriver",
    "last_probed_at",
    "next_probe_at",
    "failed_probes",
]


def _node_failed(node: Node, reason: str, *, token: str | None = None) -> None:
    """Mark a deploying node failed; it goes `Terminating` so the terminate step removes any half-made instance.

    Only if it still has the instance the caller observed and, with `token`, while the caller holds its lease.
    """
    fence = {"lease_token": token} if token is not None else {}
    with transaction.atomic():
        updated = Node.objects.filter(
            pk=node.pk, state=NodeState.DEPLOYING, instance_id=node.instance_id, **fence
        ).update(
            state=NodeState.TERMINATING,
            state_changed_at=timezone.now(),
            failure_reason=reason[:2000],
            engine_touched_at=None,
        )
        if updated:
            event_record(node_event(node, state=NodeState.TERMINATING))
    if updated:
        node_log(node, f"deploy failed: {reason}; cleaning up")
        _changed(node, failed=True)


def _node_moved(
    node: Node, from_state: str, to_state: str, *, token: str, end_actions: str | None = None, **also_set
) -> list | None:
    """Move a node from one state to the next, with its event, in one transaction; None if it did not move.

    Fenced: only while the step holds the node's lease (`token`) and the node is still in `from_state`. With
    `end_actions`, the node's own open actions end in that state in the same transaction; their ids are returned.
    """
    with transaction.atomic():
        moved = Node.objects.filter(pk=node.pk, state=from_state, lease_token=token).update(
            state=to_state, state_changed_at=timezone.now(), **also_set
        )
        if not moved:
            return None
        event_record(node_event(node, state=to_state))
        return _end_node_actions(node, state=end_actions) if end_actions else []


def node_terminate_step(node_uuid) -> Step:
    """Destroy the node's instance, and any twin carrying its uuid tag, then mark it `Terminated`."""
    token = _claim(node_uuid, [NodeState.TERMINATING])
    if token is None:
        return _not_claimed(node_uuid, [NodeState.TERMINATING])
    node = _load(node_uuid)
    try:
        driver = get_driver(node.region.provider.name)
        region = node.region.name
        destroyed = set()
        if node.instance_id:
            driver.destroy_node(instance_id=node.instance_id, region=region)
            destroyed.add(node.instance_id)
            node_log(node, f"instance {node.instance_id} terminated")
        # An instance made by an attempt that died before recording its id carries our tag: find it too.
        for _ in range(3):
            found = driver.find_node(node_uuid=str(node.uuid), region=region)
            if found is None or found.instance_id in destroyed:
                break
            driver.destroy_node(instance_id=found.instance_id, region=region)
            destroyed.add(found.instance_id)
            node_log(node, f"instance {found.instance_id} (found by tag) terminated")
        if not destroyed:
            node_log(node, "no instance to terminate")
        ended = _node_moved(
            node,
            NodeState.TERMINATING,
            NodeState.TERMINATED,
            token=token,
            end_actions=ActionState.SUCCESS,
            destroyed_datetime=timezone.now(),
        )
        if ended is None:
            _lost_lease(node, "marking it terminated")
            return Step(Outcome.DONE)
        action_log_many(action_ids=ended, message="Node terminated")
        _changed(node)
        return Step(Outcome.DONE)
    except TransientProviderError as error:
        node_log(node, f"transient provider error while terminating: {error}")
        return Step(Outcome.TRANSIENT, str(error))
    except PermanentProviderError as error:
        node_log(node, f"could not terminate: {error}; the sweep will try again")
        _finish_node_actions(node, token=token, state=ActionState.FAILED, message=f"Terminate failed: {error}")
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def node_upgrade_step(node_uuid) -> Step:
    """Upgrade Docker on an `Upgrading` node, then put it back to `Deployed` with its new version."""
    token = _claim(node_uuid, [NodeState.UPGRADING])
    if token is None:
        return _not_claimed(node_uuid, [NodeState.UPGRADING])
    node = _load(node_uuid)
    try:
        driver = get_driver(node.region.provider.name)
        driver.upgrade_docker(instance_id=node.instance_id, region=node.region.name)
        instance = driver.get_node(instance_id=node.instance_id, region=node.region.name)
        version = (instance.extra.get("docker_version") if instance else None) or node.docker_version
        ended = _node_moved(
            node,
            NodeState.UPGRADING,
            NodeState.DEPLOYED,
            token=token,
            end_actions=ActionState.SUCCESS,
            docker_version=version,
        )
        if ended is None:
            _lost_lease(node, "recording its Docker upgrade")
            return Step(Outcome.DONE)
        action_log_many(action_ids=ended, message=f"Docker upgraded to {version}")
        node_log(node, f"Docker upgraded to {version}")
        _changed(node)
        return Step(Outcome.DONE)
    except TransientProviderError as error:
        return Step(Outcome.TRANSIENT, str(error))
    except PermanentProviderError as error:
        ended = _node_moved(node, NodeState.UPGRADING, NodeState.DEPLOYED, token=token, end_actions=ActionState.FAILED)
        if ended is None:
            _lost_lease(node, f"recording that its Docker upgrade failed ({error})")
            return Step(Outcome.DONE)
        action_log_many(action_ids=ended, message=f"Docker upgrade failed: {error}")
        node_log(node, f"Docker upgrade failed: {error}")
        _changed(node)
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def probe_delay(failed_probes: int) -> float:
    """Seconds until a node is probed again: the health check interval, doubled for each probe in a row it failed,
    up to ENGINE_HEALTH_CHECK_BACKOFF_MAX. Nodes that never answer are asked less and less often."""
    interval = settings.ENGINE_HEALTH_CHECK_INTERVAL
    if failed_probes <= 0:
        return interval
    cap = max(settings.ENGINE_HEALTH_CHECK_BACKOFF_MAX, interval)
    return min(interval * 2 ** min(failed_probes - 1, 30), cap)


def node_health_step(node_uuid, action_uuid=None) -> Step:
    """Ask the provider whether the node is up: `Deployed` (and `last_seen` now) or `Unreachable`.

    It holds no lease (a probe changes nothing at the provider); its result applies only if the node still has the
    state and instance it probed. It also schedules the node's next probe (`probe_delay`).
    """
    node = _load(node_uuid)
    if node.state not in (NodeState.DEPLOYED, NodeState.UNREACHABLE):
        return Step(Outcome.DONE)
    try:
        healthy = get_driver(node.region.provider.name).check_health(
            instance_id=node.instance_id, region=node.region.name
        )
    except TransientProviderError as error:
        return Step(Outcome.TRANSIENT, str(error))
    except PermanentProviderError as error:
        healthy = False
        node_log(node, f"health check failed: {error}")
    now = timezone.now()
    new_state = NodeState.DEPLOYED if healthy else NodeState.UNREACHABLE
    failed_probes = 0 if healthy else node.failed_probes + 1
    updates = {
        "state": new_state,
        "last_probed_at": now,
        "next_probe_at": now + datetime.timedelta(seconds=probe_delay(failed_probes)),
        "failed_probes": failed_probes,
    }
    if healthy:
        updates["last_seen"] = now
    if node.state != new_state:
        updates["state_changed_at"] = now
    with transaction.atomic():
        updated = Node.objects.filter(pk=node.pk, state=node.state, instance_id=node.instance_id).update(**updates)
        if updated and node.state != new_state:
            event_record(node_event(node, state=new_state))
        ended = None
        if action_uuid:
            ended = (
                Action.objects.select_for_update(of=("self",))
                .filter(pk=action_uuid, state__in=ACTION_OPEN_STATES)
                .first()
            )
            if ended is not None:
                Action.objects.filter(pk=action_uuid).update(state=ActionState.SUCCESS, end_date=now)
                event_record(action_event(ended, state=ActionState.SUCCESS))
    if ended:
        action_log_many(action_ids=[action_uuid], message=f"Node is {'reachable' if healthy else 'unreachable'}")
    if updated and node.state != new_state:
        node_log(node, f"now {new_state}")
        _changed(node)
    return Step(Outcome.DONE)


def node_strays_step(node_uuid) -> Step:
    """Adopt or destroy the instances a step created for the node after it had lost the node's lease.

    Holding the lease, nobody else is creating or recording an instance for the node, so this is decided once: a
    stray the node has meanwhile recorded is its own; one made for a node still deploying with no instance is
    adopted (the poll watches it from here); any other is destroyed, since the node runs another (or none).
    """
    if not Node.objects.filter(pk=node_uuid).exclude(stray_instance_ids=[]).exists():
        return Step(Outcome.DONE)
    token = _claim(node_uuid, None)
    if token is None:
        return Step(Outcome.BUSY)
    node = _load(node_uuid)
    try:
        driver = get_driver(node.region.provider.name)
        region = node.region.name
        for instance_id in node.stray_instance_ids:
            adopt = False
            if instance_id == node.instance_id:
                message = f"instance {instance_id}, made by a step that had lost the lease, is the node's own"
            elif node.state == NodeState.DEPLOYING and not node.instance_id:
                instance = driver.get_node(instance_id=instance_id, region=region)
                adopt = instance is not None and not instance.is_gone
                message = (
                    f"adopted instance {instance_id}, made by a step that had lost the lease"
                    if adopt
                    else f"instance {instance_id}, made by a step that had lost the lease, is gone"
                )
            else:
                driver.destroy_node(instance_id=instance_id, region=region)
                message = (
                    f"destroyed instance {instance_id}, made by a step that had lost the lease "
                    f"(the node's instance is {node.instance_id or 'none'}): no twin is kept"
                )
            if not _stray_settled(node, token, instance_id, adopt=adopt):
                _lost_lease(node, f"settling instance {instance_id}")
                return Step(Outcome.DONE)
            node_log(node, message)
        if node.state == NodeState.DEPLOYING and node.instance_id:
            schedule_cluster_poll(node.node_cluster_id)
        return Step(Outcome.DONE)
    except TransientProviderError as error:
        node_log(node, f"transient provider error while settling stray instances: {error}")
        return Step(Outcome.TRANSIENT, str(error))
    except PermanentProviderError as error:
        node_log(node, f"could not settle stray instances: {error}; the sweep will try again")
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def _stray_settled(node: Node, token: str, instance_id: str, *, adopt: bool) -> bool:
    """Take a settled stray off the node's list (recording it as the node's instance if adopted), fenced."""
    with transaction.atomic():
        if not _holding(node.pk, token):
            return False
        current = Node.objects.filter(pk=node.pk).values_list("stray_instance_ids", flat=True).first() or []
        updates = {"stray_instance_ids": [stray for stray in current if stray != instance_id]}
        if adopt:
            updates["instance_id"] = node.instance_id = instance_id
        Node.objects.filter(pk=node.pk).update(**updates)
        if adopt:
            event_record(node_event(node))  # the node's instance changed
    return True
