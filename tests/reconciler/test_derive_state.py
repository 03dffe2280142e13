"""The pure parts of the reconciler: state derivation from nodes, and which nodes a scale-in removes."""

import datetime
from types import SimpleNamespace

import pytest

from nodeclusters.choices import NodeClusterState as C
from nodeclusters.choices import NodeState as N
from nodeclusters.reconciler import derive_state, failure_budget, pick_scale_in


def nodes(*states):
    return [SimpleNamespace(state=state) for state in states]


@pytest.mark.parametrize(
    ("current", "target", "active", "in_transit", "gave_up", "expected"),
    [
        # Work left to do: the state says which kind of work.
        (C.DEPLOYING, 3, nodes(N.DEPLOYED, N.DEPLOYING), 1, False, C.DEPLOYING),
        (C.SCALING, 3, nodes(N.DEPLOYED, N.DEPLOYED), 0, False, C.SCALING),
        (C.DEPLOYED, 3, nodes(N.DEPLOYED), 0, False, C.SCALING),
        (C.PARTLY_DEPLOYED, 1, nodes(N.DEPLOYED, N.DEPLOYED), 0, False, C.SCALING),
        (C.EMPTY_CLUSTER, 1, [], 0, False, C.SCALING),
        (C.SCALING, 2, nodes(N.DEPLOYED, N.DEPLOYED), 1, False, C.SCALING),  # a node still terminating
        # Converged.
        (C.DEPLOYING, 2, nodes(N.DEPLOYED, N.DEPLOYED), 0, False, C.DEPLOYED),
        (C.SCALING, 2, nodes(N.DEPLOYED, N.UPGRADING), 0, False, C.DEPLOYED),
        (C.SCALING, 2, nodes(N.DEPLOYED, N.UNREACHABLE), 0, False, C.PARTLY_DEPLOYED),
        (C.SCALING, 0, [], 0, False, C.EMPTY_CLUSTER),
        (C.DEPLOYING, 0, [], 0, False, C.EMPTY_CLUSTER),
        # Gave up after too many failures: what is up stays up.
        (C.DEPLOYING, 3, nodes(N.DEPLOYED), 0, True, C.PARTLY_DEPLOYED),
        (C.DEPLOYING, 3, [], 0, True, C.EMPTY_CLUSTER),
        (C.DEPLOYING, 3, nodes(N.DEPLOYED, N.DEPLOYING), 1, True, C.DEPLOYING),  # not before transit ends
        # Termination ends only when nothing is left.
        (C.TERMINATING, 0, [], 1, False, C.TERMINATING),
        (C.TERMINATING, 0, nodes(N.DEPLOYED), 0, False, C.TERMINATING),
        (C.TERMINATING, 0, [], 0, False, C.TERMINATED),
    ],
)
def test_derive_state(current, target, active, in_transit, gave_up, expected):
    assert (
        derive_state(current=current, target=target, active=active, in_transit=in_transit, gave_up=gave_up) == expected
    )


def test_scale_in_removes_undeployed_nodes_first_then_the_newest():
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    old = SimpleNamespace(state=N.DEPLOYED, created_at=base, name="old")
    new = SimpleNamespace(state=N.DEPLOYED, created_at=base + datetime.timedelta(minutes=5), name="new")
    pending = SimpleNamespace(state=N.DEPLOYING, created_at=base - datetime.timedelta(minutes=5), name="pending")
    assert [node.name for node in pick_scale_in([old, new, pending], 1)] == ["pending"]
    assert [node.name for node in pick_scale_in([old, new, pending], 2)] == ["pending", "new"]
    assert [node.name for node in pick_scale_in([old, new, pending], 3)] == ["pending", "new", "old"]


def test_failure_budget_is_the_target_but_at_least_three(settings):
    settings.ENGINE_FAILURE_BUDGET = 0
    assert failure_budget(1) == 3
    assert failure_budget(10) == 10
    settings.ENGINE_FAILURE_BUDGET = 2
    assert failure_budget(10) == 2
