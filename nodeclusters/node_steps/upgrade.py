"""Upgrading Docker on a node, where its provider can."""

from providers import registry
from providers.base import PermanentProviderError, TransientProviderError

from ..choices import ActionState, NodeState
from ..services.actions import action_log_many
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
        driver = registry.get_driver(node.region.provider.name)
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
