"""Fair health checks: a bounded number of probes per sweep, to the nodes probed longest ago, with unreachable
nodes backing off, so however many nodes never answer, the healthy ones are still checked."""

import datetime
from collections import Counter
from unittest import mock

import pytest
from django.utils import timezone

from nodeclusters import node_steps, tasks
from nodeclusters.choices import NodeState
from nodeclusters.models import Node
from providers.models import SimulatedInstance
from tests import factories

from .conftest import converge

pytestmark = pytest.mark.django_db


class Clock:
    """`timezone.now` for the engine, moved forward by the test."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def health_settings(settings):
    settings.ENGINE_HEALTH_CHECK_INTERVAL = 60
    settings.ENGINE_HEALTH_CHECKS_PER_SWEEP = 5
    settings.ENGINE_HEALTH_CHECK_BACKOFF_MAX = 600
    settings.ENGINE_STUCK_AFTER = 60
    return settings


def fleet(user, *, healthy: int, unreachable: int) -> tuple[list, list]:
    """Deployed nodes; the instances of `unreachable` of them are gone, and they have not been seen for a day."""
    cluster = converge(factories.deploy(factories.make_cluster(user, target_num_nodes=healthy + unreachable)).uuid)
    nodes = list(cluster.nodes.order_by("created_at"))
    dead, alive = nodes[:unreachable], nodes[unreachable:]
    day_ago = timezone.now() - datetime.timedelta(days=1)
    SimulatedInstance.objects.filter(instance_id__in=[node.instance_id for node in dead]).update(terminated_at=day_ago)
    Node.objects.filter(pk__in=[node.pk for node in dead]).update(
        state=NodeState.UNREACHABLE, last_seen=day_ago, last_probed_at=None, next_probe_at=None
    )
    hour_ago = timezone.now() - datetime.timedelta(hours=1)
    Node.objects.filter(pk__in=[node.pk for node in alive]).update(
        last_seen=hour_ago, last_probed_at=None, next_probe_at=None
    )
    return [node.pk for node in alive], [node.pk for node in dead]


def sweep_every_15_seconds(clock: Clock, sweeps: int) -> list[list]:
    """Run the sweep `sweeps` times, 15 s apart, each probe at once; the nodes each sweep probed."""
    probed = []

    def probe(node_uuid, *args):
        probed[-1].append(node_uuid)
        node_steps.node_health_step(node_uuid)

    with (
        mock.patch("django.utils.timezone.now", side_effect=lambda: clock.now),
        mock.patch.object(tasks.check_node_health, "delay", side_effect=probe),
        mock.patch.object(tasks.reconcile_node_cluster, "delay"),
    ):
        for _ in range(sweeps):
            probed.append([])
            tasks.engine_sweep()
            clock.advance(15)
    return probed


def test_healthy_nodes_are_probed_however_many_nodes_never_answer(user, catalog, health_settings):
    alive, dead = fleet(user, healthy=3, unreachable=20)  # four times the per-sweep bound never answers
    rounds = sweep_every_15_seconds(Clock(), sweeps=20)  # five minutes: five health check intervals

    assert all(len(probes) <= 5 for probes in rounds)  # bounded per sweep
    probes = Counter(str(node_uuid) for sweep in rounds for node_uuid in sweep)
    first = {str(pk): next(i for i, sweep in enumerate(rounds) if str(pk) in map(str, sweep)) for pk in alive}
    assert max(first.values()) <= 4  # every healthy node within the first five sweeps (23 nodes, 5 per sweep)
    for pk in alive:  # then once per interval (60 s, four sweeps), never starved by the dead ones
        assert probes[str(pk)] >= 4, probes
    for pk in dead:  # while those back off: 60 s, 120 s, 240 s...
        assert probes[str(pk)] <= 3, probes
    assert set(Node.objects.filter(pk__in=alive).values_list("state", flat=True)) == {NodeState.DEPLOYED}
    assert set(Node.objects.filter(pk__in=dead).values_list("state", flat=True)) == {NodeState.UNREACHABLE}


def test_an_unreachable_node_backs_off_exponentially_up_to_the_cap(user, catalog, health_settings):
    _, (dead,) = fleet(user, healthy=0, unreachable=1)
    delays = []
    for _ in range(6):
        node_steps.node_health_step(dead)
        node = Node.objects.get(pk=dead)
        delays.append(round((node.next_probe_at - node.last_probed_at).total_seconds()))
    assert delays == [60, 120, 240, 480, 600, 600]
    assert node.failed_probes == 6 and node.state == NodeState.UNREACHABLE
    SimulatedInstance.objects.filter(instance_id=node.instance_id).update(terminated_at=None)  # it answers again
    node_steps.node_health_step(dead)
    node.refresh_from_db()
    assert (node.state, node.failed_probes) == (NodeState.DEPLOYED, 0)
    assert round((node.next_probe_at - node.last_probed_at).total_seconds()) == 60


def test_probes_lost_on_their_way_are_sent_again_in_turn(user, catalog, health_settings):
    fleet(user, healthy=6, unreachable=0)
    clock = Clock()
    sent = []
    with (
        mock.patch("django.utils.timezone.now", side_effect=lambda: clock.now),
        mock.patch.object(tasks.check_node_health, "delay") as lost,  # the broker loses every probe
    ):
        for advance in (15, 61, 15, 0):
            lost.reset_mock()
            tasks.engine_sweep()
            sent.append({call.args[0] for call in lost.call_args_list})
            clock.advance(advance)
    first, second, third, fourth = sent
    assert len(first) == 5 and len(second) == 1 and not first & second  # the sixth node's turn comes next
    assert third == first and fourth == second  # once due again: the ones sent longest ago first
