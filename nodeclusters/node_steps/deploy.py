"""Deploying a node: create (or adopt) its instance, watch it boot (one poll per cluster), land or fail it, and
settle the instances a step made after losing its lease (strays)."""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, PositiveSmallIntegerField, Q, When
from django.utils import timezone

from providers import registry
from providers.base import Instance, InstanceState, PermanentProviderError, TransientProviderError
from tutum_api.logging import bind_log_context

from ..choices import NodeState
from ..models import Node, NodeCluster
from ..services.actions import engine_schedule
from ..services.events import event_record, events_record, node_event
from .common import (
    NodeLog,
    Outcome,
    Step,
    _changed,
    _claim,
    _holding,
    _load,
    _lost_lease,
    _not_claimed,
    _release,
    _spec,
    node_log,
    nodes_log,
)

logger = logging.getLogger(__name__)


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
        driver = registry.get_driver(node.region.provider.name)
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
        driver = registry.get_driver(region.provider.name)
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
        driver = registry.get_driver(node.region.provider.name)
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
