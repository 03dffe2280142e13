"""The repair decision on its own: which nodes are due, the short-circuit and the hourly budget."""

import datetime
import uuid
from types import SimpleNamespace

from nodeclusters.choices import NodeState, ReasonCode
from nodeclusters.repair import repair_decide

NOW = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)
LIMITS = {"unhealthy_timeout": 600, "max_unhealthy_percent": 40, "max_repairs_per_hour": 3, "repairs_last_hour": 0}


def node(state=NodeState.DEPLOYED, *, gone=False, for_seconds=0, name=""):
    return SimpleNamespace(
        uuid=uuid.uuid4(),
        name=name,
        state=state,
        instance_id=f"i-{name}",
        failure_reason_code=ReasonCode.INSTANCE_GONE if gone else "",
        state_changed_at=NOW - datetime.timedelta(seconds=for_seconds),
    )


def healthy(count):
    return [node(name=f"ok{index}") for index in range(count)]


def gone_nodes(count):
    """Nodes whose instance is gone, `gone0` unhealthy the longest."""
    return [
        node(NodeState.UNREACHABLE, gone=True, for_seconds=100 - index, name=f"gone{index}") for index in range(count)
    ]


def decide(nodes, **limits):
    return repair_decide(nodes=nodes, now=NOW, **{**LIMITS, **limits})


def names(candidates):
    return [candidate.node.name for candidate in candidates]


def test_a_gone_instance_is_due_at_once_an_unreachable_node_only_after_the_timeout():
    gone = node(NodeState.UNREACHABLE, gone=True, for_seconds=5, name="gone")
    late = node(NodeState.UNREACHABLE, for_seconds=601, name="late")
    recent = node(NodeState.UNREACHABLE, for_seconds=599, name="recent")
    decision = decide([gone, late, recent, *healthy(7)])
    assert names(decision.repair) == ["gone", "late"]
    codes = [candidate.reason_code for candidate in decision.repair]
    assert codes == [ReasonCode.INSTANCE_GONE, ReasonCode.UNREACHABLE]
    assert "unhealthy_timeout (600 s)" in decision.repair[1].reason
    assert decision.unhealthy == 3 and decision.total == 10
    assert decision.held_message() == ""


def test_the_longest_unreachable_go_first_and_a_gone_instance_before_them():
    nodes = [
        node(NodeState.UNREACHABLE, for_seconds=700, name="b"),
        node(NodeState.UNREACHABLE, for_seconds=900, name="a"),
        node(NodeState.DEPLOYED, gone=True, name="gone"),  # seen gone before it was marked unreachable
        *healthy(7),
    ]
    assert names(decide(nodes).repair) == ["gone", "a", "b"]


def test_more_than_max_unhealthy_percent_short_circuits_every_repair():
    nodes = gone_nodes(2) + healthy(2)
    decision = decide(nodes)
    assert decision.short_circuit and decision.repair == []
    assert names(decision.waiting) == ["gone0", "gone1"]
    message = decision.held_message()
    assert message.startswith("Short-circuit: 2 of 4 node(s) unhealthy (50%), more than max_unhealthy_percent (40%)")


def test_unreachable_nodes_within_their_timeout_count_towards_the_short_circuit():
    nodes = [node(NodeState.UNREACHABLE, gone=True, name="gone"), node(NodeState.UNREACHABLE, for_seconds=10)]
    decision = decide(nodes + healthy(2))
    assert decision.short_circuit and names(decision.waiting) == ["gone"]


def test_exactly_max_unhealthy_percent_is_still_repaired():
    nodes = gone_nodes(2) + healthy(3)
    decision = decide(nodes)  # 2 of 5: 40%, not more than 40%
    assert not decision.short_circuit and names(decision.repair) == ["gone0", "gone1"]
    assert decide(nodes, max_unhealthy_percent=39).short_circuit


def test_the_hourly_budget_caps_repairs_and_says_who_waits():
    nodes = gone_nodes(3) + healthy(7)
    decision = decide(nodes, repairs_last_hour=2)
    assert names(decision.repair) == ["gone0"] and names(decision.waiting) == ["gone1", "gone2"]
    assert decision.held_message().startswith(
        "Repair budget spent: 2 repair(s) in the last hour, max_repairs_per_hour is 3. Waiting: /api/v1/node/"
    )
    spent = decide(nodes, repairs_last_hour=3)
    assert spent.repair == [] and len(spent.waiting) == 3
    assert decide(nodes, max_repairs_per_hour=0).repair == []  # 0 turns repair off


def test_a_healthy_cluster_has_nothing_to_repair():
    decision = decide([*healthy(3), node(NodeState.UPGRADING)])
    assert decision.candidates == [] and not decision.short_circuit and decision.held_message() == ""
