"""Per-node steps of actions (an action's `steps`): started where the engine decides on a node's work, ended by the
node step that does it, in as few statements as the engine already spends.

A step is matched by node, kind and state, never by action: the node's index makes ending one a single
index lookup, and a poll that lands many nodes ends all their boot steps in one UPDATE. Every function here writes in
the caller's transaction, next to the node rows it describes.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable

from django.db.models import Case, F, TextField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from nodeclusters.choices import UNFINISHED_STEP_STATES, ReasonCode, StepKind, StepState
from nodeclusters.models import ActionStep

_OPEN = StepState.IN_PROGRESS
#: A deploy's steps not ended yet: its create under way, its boot waiting for it (Pending) or under way.
_UNFINISHED = tuple(UNFINISHED_STEP_STATES)
#: The steps of a deploy: a node being created or booting has one of these unfinished.
_DEPLOY_STEPS = (StepKind.CREATE, StepKind.BOOT)


def reason_code_of(code: str | None) -> str:
    """A code from ReasonCode: a driver's error code as it is, anything unknown as `provider_error`, none as ""."""
    if not code:
        return ""
    return code if code in ReasonCode.values else ReasonCode.PROVIDER_ERROR


def most_common_reason(codes: Iterable[str]) -> str:
    """The code most of `codes` carry (the first seen on a tie), "" if none carries one: a failed action's code."""
    counted = Counter(code for code in codes if code)
    return counted.most_common(1)[0][0] if counted else ""


def steps_start(*, action_id, node_ids: Iterable, step: str, reason_code: str = "", message: str = "") -> None:
    """Open a `step` for each node on the action, in one INSERT (nothing without an action to show them on)."""
    node_ids = list(node_ids)
    if action_id is None or not node_ids:
        return
    now = timezone.now()
    ActionStep.objects.bulk_create(
        ActionStep(action_id=action_id, node_id=pk, step=step, reason_code=reason_code, message=message, start_date=now)
        for pk in node_ids
    )


def steps_start_deploys(*, action_id, node_ids: Iterable) -> None:
    """New nodes to deploy: a create step starts for each on the action, and its boot step waits (`Pending`) for it,
    in one INSERT; the deploy step that creates the instance then moves each on (`steps_instance_created`)."""
    node_ids = list(node_ids)
    if action_id is None or not node_ids:
        return
    now = timezone.now()
    ActionStep.objects.bulk_create(step for pk in node_ids for step in deploy_steps(action_id, pk, now))


def deploy_steps(action_id, node_id, now) -> list[ActionStep]:
    """A new node's deploy steps on an action, unsaved: its create under way from `now` and its boot `Pending`."""
    return [
        ActionStep(action_id=action_id, node_id=node_id, step=StepKind.CREATE, start_date=now),
        ActionStep(action_id=action_id, node_id=node_id, step=StepKind.BOOT, state=StepState.PENDING, start_date=None),
    ]


def steps_instance_created(*, node_id, message: str) -> None:
    """The node's instance exists: its create steps succeed and their boot steps start."""
    steps_instances_created({node_id: message})


def steps_instances_created(messages: dict) -> None:
    """The nodes' instances exist ({node id: message}): their create steps succeed (each with its node's message)
    and their boot steps start, in two plain UPDATEs for all of them by the node's index, changing no indexed
    column: a fleet's deploy steps spend no more than that on them."""
    if not messages:
        return
    now = timezone.now()
    if len(messages) == 1:
        node_id, message = next(iter(messages.items()))
        nodes = {"node_id": node_id}
    else:
        message = Case(
            *(When(node_id=pk, then=Value(text)) for pk, text in messages.items()),
            default=F("message"),
            output_field=TextField(),
        )
        nodes = {"node_id__in": list(messages)}
    ActionStep.objects.filter(step=StepKind.CREATE, state=_OPEN, **nodes).update(
        state=StepState.SUCCESS, end_date=now, message=message
    )
    ActionStep.objects.filter(step=StepKind.BOOT, state=StepState.PENDING, **nodes).update(state=_OPEN, start_date=now)


def steps_booted(*, node_ids: Iterable, message: str = "Deployed") -> None:
    """The nodes are `Deployed`: their open create and boot steps succeed, in one statement for all of them."""
    node_ids = list(node_ids)
    if node_ids:
        now = timezone.now()
        ActionStep.objects.filter(node_id__in=node_ids, step__in=_DEPLOY_STEPS, state__in=_UNFINISHED).update(
            state=StepState.SUCCESS, start_date=Coalesce(F("start_date"), Value(now)), end_date=now, message=message
        )


def steps_deploy_failed(failures: list[tuple[object, str, str]]) -> None:
    """Deploys that failed, as (node id, reason code, message): each node's open create or boot step fails (a boot
    that had not started is canceled with the same reason), and as the node is cleaned up (it goes `Terminating`) a
    terminate step starts on the same actions."""
    if not failures:
        return
    why = {node_id: (code, message) for node_id, code, message in failures}
    for (code, message), node_ids in _grouped(why).items():
        ActionStep.objects.filter(node_id__in=node_ids, step=StepKind.BOOT, state=StepState.PENDING).update(
            state=StepState.CANCELED, reason_code=code, message=f"not started: {message}", end_date=timezone.now()
        )
    failing = list(
        ActionStep.objects.filter(node_id__in=list(why), step__in=_DEPLOY_STEPS, state=_OPEN).values_list(
            "pk", "node_id", "action_id"
        )
    )
    if not failing:
        return
    now = timezone.now()
    groups = defaultdict(list)
    for pk, node_id, _ in failing:
        groups[why[node_id]].append(pk)
    for (code, message), pks in groups.items():
        ActionStep.objects.filter(pk__in=pks).update(
            state=StepState.FAILED, reason_code=code, message=message, end_date=now
        )
    cleanups = dict.fromkeys((node_id, action_id) for _, node_id, action_id in failing)
    ActionStep.objects.bulk_create(
        ActionStep(
            action_id=action_id,
            node_id=node_id,
            step=StepKind.TERMINATE,
            message="cleaning up after the failed deploy",
            start_date=now,
        )
        for node_id, action_id in cleanups
    )


def _grouped(why: dict) -> dict:
    """{(code, message): [node ids]} from {node id: (code, message)}."""
    groups = defaultdict(list)
    for node_id, reason in why.items():
        groups[reason].append(node_id)
    return groups


def steps_abandoned(*, node_ids: Iterable, reason_code: str, message: str) -> None:
    """Deploys the engine stops (their nodes scaled away by a newer action or a cancel): open create and boot steps
    end `Canceled` with the reason, in one statement."""
    node_ids = list(node_ids)
    if node_ids:
        ActionStep.objects.filter(node_id__in=node_ids, step__in=_DEPLOY_STEPS, state__in=_UNFINISHED).update(
            state=StepState.CANCELED, reason_code=reason_code, message=message, end_date=timezone.now()
        )


def steps_finish(
    *,
    node_id,
    step: str,
    state: str,
    reason_code: str = "",
    message: str = "",
    only_actions: Iterable | None = None,
    also_for: Iterable = (),
    started=None,
) -> None:
    """End the node's open `step` steps (only those on `only_actions` if given). Actions of `also_for` that have no
    such step for the node get one, ended at once and started at `started` (when the node entered the step's state):
    a node's own actions (Node Terminate, Node Docker Upgrade) are recorded by the service that opened them, which
    records no step."""
    now = timezone.now()
    open_steps = ActionStep.objects.filter(node_id=node_id, step=step, state=_OPEN)
    if only_actions is not None:
        open_steps = open_steps.filter(action_id__in=list(only_actions))
    open_steps.update(state=state, reason_code=reason_code, message=message, end_date=now)
    missing = set(also_for)
    if missing:
        missing -= set(
            ActionStep.objects.filter(node_id=node_id, step=step, action_id__in=missing).values_list(
                "action_id", flat=True
            )
        )
        ActionStep.objects.bulk_create(
            ActionStep(
                action_id=action_id,
                node_id=node_id,
                step=step,
                state=state,
                reason_code=reason_code,
                message=message,
                start_date=started or now,
                end_date=now,
            )
            for action_id in sorted(missing, key=str)
        )
