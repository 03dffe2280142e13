"""Upgrading Docker on a node, where its provider can."""

from providers.base import PermanentProviderError, TransientProviderError

from ..choices import ACTION_OPEN_STATES, ActionName, ActionState, NodeState, StepKind, StepState
from ..models import Action
from ..services.accounts import driver_for
from ..services.actions import action_log_many
from ..services.steps import reason_code_of, steps_finish
from .common import (
    Outcome,
    Step,
    _changed,
    _claim,
    _load,
    _lost_lease,
    _node_moved,
    _not_claimed,
    _release,
    node_log,
)


def node_upgrade_step(node_uuid) -> Step:
    """Upgrade Docker on an `Upgrading` node, then put it back to `Deployed` with its new version."""
    token = _claim(node_uuid, [NodeState.UPGRADING])
    if token is None:
        return _not_claimed(node_uuid, [NodeState.UPGRADING])
    node = _load(node_uuid)
    try:
        driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name)
        driver.upgrade_docker(instance_id=node.instance_id, region=node.region.name)
        instance = driver.get_node(instance_id=node.instance_id, region=node.region.name)
        version = (instance.extra.get("docker_version") if instance else None) or node.docker_version
        ended = _node_moved(
            node,
            NodeState.UPGRADING,
            NodeState.DEPLOYED,
            token=token,
            end_actions=ActionState.SUCCESS,
            on_moved=lambda ended: _upgrade_recorded(node, StepState.SUCCESS, f"Docker upgraded to {version}", ended),
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
        return Step(Outcome.TRANSIENT, str(error), reason_code_of(error.reason_code))
    except PermanentProviderError as error:
        code, text = reason_code_of(error.reason_code), str(error)
        ended = _node_moved(
            node,
            NodeState.UPGRADING,
            NodeState.DEPLOYED,
            token=token,
            end_actions=ActionState.FAILED,
            reason_code=code,
            on_moved=lambda ended: _upgrade_recorded(node, StepState.FAILED, text, ended, code),
        )
        if ended is None:
            _lost_lease(node, f"recording that its Docker upgrade failed ({error})")
            return Step(Outcome.DONE)
        action_log_many(action_ids=ended, message=f"Docker upgrade failed: {error}")
        node_log(node, f"Docker upgrade failed: {error}")
        _changed(node)
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def _upgrade_recorded(node, state: str, message: str, ended: list, reason_code: str = "") -> None:
    """The node's upgrade step on its own upgrade actions (`ended`) and on its cluster's open Docker upgrade."""
    cluster_upgrades = (
        Action.objects.filter(
            node_cluster_id=node.node_cluster_id,
            action=ActionName.NODE_CLUSTER_DOCKER_UPGRADE,
            node__isnull=True,
            state__in=ACTION_OPEN_STATES,
        ).values_list("pk", flat=True)
        if node.node_cluster_id
        else []
    )
    steps_finish(
        node_id=node.pk,
        step=StepKind.UPGRADE,
        state=state,
        reason_code=reason_code,
        message=message,
        also_for=[*ended, *cluster_upgrades],
        started=node.state_changed_at,
    )
