"""Terminating a node: destroy its instance and any twin carrying its tag, then mark it `Terminated`."""

from django.utils import timezone

from providers.base import PermanentProviderError, TransientProviderError

from ..choices import ActionState, NodeState, StepKind, StepState
from ..services.accounts import driver_for
from ..services.actions import action_log_many
from ..services.steps import reason_code_of, steps_finish
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
        driver = driver_for(owner=node.owner_id, provider_name=node.region.provider.name, existing=True)
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
        summary = f"instance {', '.join(sorted(destroyed))} terminated" if destroyed else "no instance to terminate"
        ended = _node_moved(
            node,
            NodeState.TERMINATING,
            NodeState.TERMINATED,
            token=token,
            end_actions=ActionState.SUCCESS,
            on_moved=lambda ended: _terminate_recorded(node, StepState.SUCCESS, summary, ended),
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
        code, text = reason_code_of(error.reason_code), str(error)
        _finish_node_actions(
            node,
            token=token,
            state=ActionState.FAILED,
            message=f"Terminate failed: {error}",
            reason_code=code,
            # Only the node's own actions fail; a cluster's action keeps its step open while the sweep retries.
            on_ended=lambda ended: _terminate_recorded(node, StepState.FAILED, text, ended, code, only=True),
        )
        return Step(Outcome.DONE)
    finally:
        _release(node_uuid, token)


def _terminate_recorded(node, state: str, message: str, ended: list, reason_code: str = "", *, only=False) -> None:
    """The terminate steps' outcome: the open ones (those of `ended` only, with `only`), and one for each of the
    node's own actions that ended here (a Node Terminate records no step of its own)."""
    steps_finish(
        node_id=node.pk,
        step=StepKind.TERMINATE,
        state=state,
        reason_code=reason_code,
        message=message,
        only_actions=ended if only else None,
        also_for=ended,
        started=node.state_changed_at,
    )
