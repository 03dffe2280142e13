"""Deploying a node: create (or adopt) its instance and hand it to its region's poll to watch it boot (land it if
it already runs), and settle the instances a step made after losing its lease (strays)."""

import logging
import time
import uuid as uuid_module

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, F, PositiveSmallIntegerField, Value, When

from providers.base import InstanceState, PermanentProviderError, TransientProviderError

from ..choices import NodeState, ReasonCode
from ..models import Node
from ..services.accounts import driver_for
from ..services.actions import engine_schedule
from ..services.events import event_record, node_event
from ..services.locks import retried_atomic
from ..services.steps import reason_code_of, steps_instance_created, steps_instances_created
from .common import (
    NodeLog,
    Outcome,
    Step,
    _claim,
    _claim_many,
    _holding,
    _load,
    _load_claimed,
    _lost_lease,
    _not_claimed,
    _release,
    _release_many,
    _renew_many,
    _spec,
    node_log,
    nodes_log,
)
from .landing import TIMEOUT_TEXT, _node_failed, _nodes_deployed, _timed_out
from .poll import schedule_region_poll

logger = logging.getLogger(__name__)


def node_deploy_step(node_uuid) -> Step:
    """Create the node's instance (or find the one an earlier attempt made) and hand it to its region's poll.

    Under a fleet's load every commit waits for the database's log to reach the disk, so the step commits three
    times on its way: the claim with its first log line, (the provider's create,) and the instance recorded with
    the lease released and its log line, when it is booting as it almost always is.
    """
    with transaction.atomic():
        token = _claim(node_uuid, [NodeState.DEPLOYING], attempts=_ATTEMPT)
        if token is not None:
            node = _load(node_uuid)
            log = NodeLog(node)
            # An earlier attempt may have created the instance and died before recording its id; it carries the
            # node's tag. The first attempt has no such instance to find, and saves a provider call per node.
            first_attempt = _first_attempt(node)
            if first_attempt:
                log(_creating(node))
    if token is None:
        return _not_claimed(node_uuid, [NodeState.DEPLOYING])
    released = False
    try:
        driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name)
        region = node.region.name
        if not node.instance_id:
            instance = None if first_attempt else driver.find_node(node_uuid=str(node.uuid), region=region)
            created = instance is None
            if created:
                if not first_attempt:
                    log(_creating(node))
                instance = driver.create_node(_spec(node))
            # Booting, as a fresh instance almost always is: the region's poll watches it from here, so the lease
            # goes with the same statement that records the instance.
            hand_over = _handed_over(node, instance)
            if not _instance_recorded(node, instance, token, created=created, hand_over=hand_over, log=log):
                return Step(Outcome.DONE)
            if hand_over:
                released = True
                schedule_region_poll(node.region_id)
                return Step(Outcome.WAITING)
        else:
            instance = driver.get_node(instance_id=node.instance_id, region=region)
        return _instance_observed(node, instance, token)
    except TransientProviderError as error:
        log(f"transient provider error: {error}")
        return Step(Outcome.TRANSIENT, str(error), reason_code_of(error.reason_code))
    except PermanentProviderError as error:
        _node_failed(node, str(error), reason_code=reason_code_of(error.reason_code), token=token)
        return Step(Outcome.DONE)
    finally:
        if not released:
            _release(node_uuid, token)


#: A deploy attempt that may create an instance (the node has none recorded) counts itself as the step claims it.
_ATTEMPT = Case(
    When(instance_id="", then=F("attempts") + 1),
    default=F("attempts"),
    output_field=PositiveSmallIntegerField(),
)


def _first_attempt(node: Node) -> bool:
    return not node.instance_id and node.attempts <= 1


def _handed_over(node: Node, instance) -> bool:
    """Whether the region's poll watches the instance from here: it is booting (not gone, not running yet) and the
    node has time left to boot."""
    return not instance.is_gone and instance.state != InstanceState.RUNNING and not _timed_out(node)


def _made(instance, *, created: bool) -> str:
    if created:
        return f"instance {instance.instance_id} created ({instance.state})"
    return f"found instance {instance.instance_id} made by an earlier attempt; adopting it"


def _instance_observed(node: Node, instance, token: str) -> Step:
    """The node's recorded instance as the provider describes it, the step holding the node's lease: the node
    fails if it is gone or took too long, lands if it runs; otherwise the region's poll watches it."""
    if instance is None or instance.is_gone:
        reason = f"instance {node.instance_id} disappeared while deploying"
        _node_failed(node, reason, reason_code=ReasonCode.INSTANCE_GONE, token=token)
        return Step(Outcome.DONE)
    if instance.state == InstanceState.RUNNING:
        if _nodes_deployed([(node, instance)], token=token)[1]:
            schedule_region_poll(node.region_id)  # its row was busy (or taken): the poll lands it
            return Step(Outcome.WAITING)
        return Step(Outcome.DONE)
    if _timed_out(node):
        reason = f"instance {instance.instance_id} still {instance.state} after {TIMEOUT_TEXT}"
        _node_failed(node, reason, reason_code=ReasonCode.BOOT_TIMEOUT, token=token)
        return Step(Outcome.DONE)
    schedule_region_poll(node.region_id)
    return Step(Outcome.WAITING)


#: How long a batch of deploy steps keeps instances it made before recording them (it records the rest at its
#: end): against a real cloud, whose creates take a second or more, each is recorded as soon as it exists.
RECORD_AFTER_SECONDS = 1.0


def nodes_deploy_step(node_uuids) -> dict:
    """The deploy steps of several nodes of one cluster, each as `node_deploy_step` runs it, in a few statements for
    all of them: {node uuid: Step}.

    The nodes' leases are claimed together (one token; another task's claim of a node takes that node alone) with
    their first log lines, the instances are created one after the other, and those booting are recorded and handed
    to their region's poll together, fenced as ever: a node whose lease was taken meanwhile records nothing and its
    instance goes to the engine to adopt or destroy. A node that is not on its first attempt (an earlier one may
    have made its instance) gets its own `node_deploy_step`, and so does anything but a booting instance after its
    create. The leases are renewed while the batch still has creates to make a third of a lease after its claim.
    """
    uuids = [uuid_module.UUID(str(pk)) for pk in dict.fromkeys(node_uuids)]
    token, nodes = _batch_claimed(uuids)
    first = [node for node in nodes if _first_attempt(node)]
    claimed_at = time.monotonic()
    claimed = {node.pk for node in nodes}
    steps = _not_claimed_many([pk for pk in uuids if pk not in claimed])
    later = [node.pk for node in nodes if not _first_attempt(node)]
    _release_many(later, token)
    steps.update((pk, node_deploy_step(pk)) for pk in later)
    held = {node.pk for node in first}  # the nodes this step holds the lease of, until it hands it over
    made = []  # (node, instance) created, booting, to record
    recorded_at = time.monotonic()
    try:
        for node in first:
            if time.monotonic() - claimed_at > settings.ENGINE_LEASE_SECONDS / 3:
                held &= _renew_many(held, token)
                claimed_at = time.monotonic()
            if node.pk not in held:
                steps[node.pk] = _not_claimed(node.pk, [NodeState.DEPLOYING])
                continue
            try:
                driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name)
                instance = driver.create_node(_spec(node))
            except TransientProviderError as error:
                node_log(node, f"transient provider error: {error}")
                steps[node.pk] = Step(Outcome.TRANSIENT, str(error), reason_code_of(error.reason_code))
                continue
            except PermanentProviderError as error:
                _node_failed(node, str(error), reason_code=reason_code_of(error.reason_code), token=token)
                steps[node.pk] = Step(Outcome.DONE)
                continue
            if _handed_over(node, instance):
                made.append((node, instance))
            else:
                # Not booting (running already, gone, or out of time): recorded alone, then as a single step does.
                recorded = _instance_recorded(node, instance, token, created=True, hand_over=False, log=NodeLog(node))
                steps[node.pk] = _instance_observed(node, instance, token) if recorded else Step(Outcome.DONE)
            if made and time.monotonic() - recorded_at > RECORD_AFTER_SECONDS:
                steps.update(_instances_recorded(made, token))
                held -= {node.pk for node, _ in made}
                made, recorded_at = [], time.monotonic()
        steps.update(_instances_recorded(made, token))
        held -= {node.pk for node, _ in made}
    finally:
        _release_many(held, token)
    return {str(pk): step for pk, step in steps.items()}


@retried_atomic
def _batch_claimed(uuids: list) -> tuple[str | None, list[Node]]:
    """Claim the nodes' leases together, load the nodes claimed and log the first line of those on a first
    attempt, in one transaction (run again if it loses a deadlock): the token and the nodes."""
    token = _claim_many(uuids, [NodeState.DEPLOYING], attempts=_ATTEMPT)
    nodes = _load_claimed(uuids, token) if token is not None else []
    nodes_log([(node, _creating(node)) for node in nodes if _first_attempt(node)])
    return token, nodes


def _not_claimed_many(node_uuids) -> dict:
    """`_not_claimed` for several nodes, in one query."""
    if not node_uuids:
        return {}
    waiting = set(Node.objects.filter(pk__in=node_uuids, state=NodeState.DEPLOYING).values_list("pk", flat=True))
    return {pk: Step(Outcome.BUSY if pk in waiting else Outcome.DONE) for pk in node_uuids}


def _instance_recorded(node: Node, instance, token: str, *, created: bool, hand_over: bool, log) -> bool:
    """Record the instance the step created or found as the node's, with its log line and steps, releasing the lease
    with it when the region's poll takes over (`hand_over`); whether it was recorded.

    Fenced: a create can outlive the lease, and another task may have claimed the node meanwhile (and made or adopted
    an instance of its own). Never overwrite; hand the instance over instead (`_instance_orphaned`).
    """
    release = {"lease_token": "", "lease_until": None} if hand_over else {}
    with transaction.atomic():
        recorded = Node.objects.filter(pk=node.pk, lease_token=token, instance_id="").update(
            instance_id=instance.instance_id, **release
        )
        if recorded:
            message = _made(instance, created=created)
            log(message)
            steps_instance_created(node_id=node.pk, message=message)
    if not recorded:
        _instance_orphaned(node, instance.instance_id, created=created)
        return False
    node.instance_id = instance.instance_id
    return True


def _instances_recorded(made: list, token: str) -> dict:
    """Record booting instances a batch created and hand them to their regions' polls, releasing the nodes' leases:
    {node id: Step}. Fenced: an instance whose node another task claimed meanwhile is handed over to be adopted or
    destroyed."""
    if not made:
        return {}
    holding = _made_recorded(made, token)
    steps = {}
    for node, instance in made:
        if node.pk in holding:
            node.instance_id = instance.instance_id
            steps[node.pk] = Step(Outcome.WAITING)
        else:
            _instance_orphaned(node, instance.instance_id, created=True)
            steps[node.pk] = Step(Outcome.DONE)
    for region_id in {node.region_id for node, _ in made if node.pk in holding}:
        schedule_region_poll(region_id)
    return steps


@retried_atomic
def _made_recorded(made: list, token: str) -> set:
    """In one transaction: lock the rows of the nodes the step still holds (in uuid order), record their instances,
    release their leases, log each and move their steps on; the ids of those nodes."""
    holding = set(
        Node.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk__in=[node.pk for node, _ in made], lease_token=token, instance_id="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    recorded = [(node, instance) for node, instance in made if node.pk in holding]
    if recorded:
        Node.objects.filter(pk__in=holding).update(
            instance_id=Case(
                *(When(pk=node.pk, then=Value(instance.instance_id)) for node, instance in recorded),
                default=F("instance_id"),
                output_field=CharField(),
            ),
            lease_token="",
            lease_until=None,
        )
        messages = {node.pk: _made(instance, created=True) for node, instance in recorded}
        nodes_log([(node, messages[node.pk]) for node, _ in recorded])
        steps_instances_created(messages)
    return holding


def _creating(node: Node) -> str:
    zone = f" ({node.availability_zone.name})" if node.availability_zone else ""
    return f"creating a {node.node_type.name} instance in {node.region.name}{zone}"


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
            Node.objects.select_for_update(of=("self",), no_key=True)
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


def node_give_up(node_uuid, reason: str, reason_code: str = ReasonCode.PROVIDER_ERROR) -> None:
    """A step ran out of retries: fail the node with the last error's code (a deploying one is then cleaned up).

    It takes the lease like any step: a node another task holds is that task's to finish.
    """
    token = _claim(node_uuid, [NodeState.DEPLOYING])
    node = _load(node_uuid)
    if token is None:
        node_log(node, f"giving up for now: {reason}; the sweep will try again later")
        return
    try:
        _node_failed(node, reason, reason_code=reason_code or ReasonCode.PROVIDER_ERROR, token=token)
    finally:
        _release(node_uuid, token)


def node_strays_step(node_uuid) -> Step:
    """Adopt or destroy the instances a step created for the node after it had lost the node's lease.

    Holding the lease, nobody else is creating or recording an instance for the node, so this is decided once: a
    stray the node has meanwhile recorded is its own; one made for a node still deploying with no instance is
    adopted (its region's poll watches it from here); any other is destroyed, since the node runs another (or none).
    """
    if not Node.objects.filter(pk=node_uuid).exclude(stray_instance_ids=[]).exists():
        return Step(Outcome.DONE)
    token = _claim(node_uuid, None)
    if token is None:
        return Step(Outcome.BUSY)
    node = _load(node_uuid)
    try:
        driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name, existing=True)
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
            schedule_region_poll(node.region_id)
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
