"""Health probes: `Deployed` or `Unreachable`, and when to probe the node again (backoff for failing ones).

A node that fails its probe is also looked up at its provider: an instance that is gone (deleted in the provider's
console, say) marks the node `instance_gone`, and self-repair (`nodeclusters.repair`) replaces it."""

import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from providers.base import PermanentProviderError, ProviderError, TransientProviderError

from ..choices import ACTION_OPEN_STATES, ActionState, NodeState, ReasonCode
from ..models import Action, Node
from ..services.accounts import driver_for
from ..services.actions import action_log_many, engine_schedule
from ..services.events import action_event, event_record, node_event
from .common import (
    Outcome,
    Step,
    _changed,
    _load,
    node_log,
)


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
    gone = False
    try:
        driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name, existing=True)
        healthy = driver.check_health(instance_id=node.instance_id, region=node.region.name)
        gone = not healthy and _instance_gone(driver, node)
    except TransientProviderError as error:
        return Step(Outcome.TRANSIENT, str(error), error.reason_code)
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
    was_gone = node.failure_reason_code == ReasonCode.INSTANCE_GONE
    if gone and not was_gone:
        updates["failure_reason"] = f"instance {node.instance_id or '(none)'} is gone at the provider"
        updates["failure_reason_code"] = ReasonCode.INSTANCE_GONE
    elif healthy and was_gone:  # it answers again after all
        updates["failure_reason"] = updates["failure_reason_code"] = ""
    with transaction.atomic():
        updated = Node.objects.filter(pk=node.pk, state=node.state, instance_id=node.instance_id).update(**updates)
        if updated and (node.state != new_state or gone != was_gone):
            event_record(node_event(node, state=new_state))
        if updated and gone and not was_gone and node.node_cluster_id:
            # Self-repair looks at the cluster now rather than at the next sweep.
            engine_schedule("nodeclusters.repair_node_cluster", node.node_cluster_id)
        ended = None
        if action_uuid:
            ended = (
                Action.objects.select_for_update(of=("self",), no_key=True)
                .filter(pk=action_uuid, state__in=ACTION_OPEN_STATES)
                .first()
            )
            if ended is not None:
                Action.objects.filter(pk=action_uuid).update(state=ActionState.SUCCESS, end_date=now)
                event_record(action_event(ended, state=ActionState.SUCCESS))
    if ended:
        action_log_many(action_ids=[action_uuid], message=f"Node is {'reachable' if healthy else 'unreachable'}")
    if updated and gone and not was_gone:
        node_log(node, f"instance {node.instance_id or '(none)'} is gone at the provider; self-repair replaces it")
    if updated and node.state != new_state:
        node_log(node, f"now {new_state}")
        _changed(node)
    return Step(Outcome.DONE)


def _instance_gone(driver, node: Node) -> bool:
    """Whether the provider no longer has the node's instance (or has it terminated): only asked of a node that failed
    its probe. A provider error says nothing either way."""
    if not node.instance_id:
        return True
    try:
        instance = driver.get_node(instance_id=node.instance_id, region=node.region.name)
    except ProviderError:
        return False
    return instance is None or instance.is_gone
