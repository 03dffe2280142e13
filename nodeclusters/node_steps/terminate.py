"""Terminating a node: destroy its instance and any twin carrying its tag, then mark it `Terminated`."""

from django.utils import timezone

from providers import registry
from providers.base import PermanentProviderError, TransientProviderError

from ..choices import ActionState, NodeState
from ..services.actions import action_log_many
from .common import (
    Outcome,
    Step,
    _changed,
    _claim,
    _finish_node_actions,
    _load,
    _lost_lease,
    _node_moved,
    _not_claimed,
    _release,
    node_log,
)


def node_terminate_step(node_uuid) -> Step:
    """Destroy the node's instance, and any twin carrying its uuid tag, then mark it `Terminated`."""
    token = _claim(node_uuid, [NodeState.TERMINATING])
    if token is None:
        return _not_claimed(node_uuid, [NodeState.TERMINATING])
    node = _load(node_uuid)
    try:
        driver = registry.get_driver(node.region.provider.name)
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
