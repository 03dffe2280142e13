"""One poll per provider and region: a single listing lands the booting nodes of every cluster there, with the same
conditional writes as a deploy step's landing, then reconciles (in one batch) each cluster whose last node landed."""

from collections import Counter
from functools import partial
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from nodeclusters import node_steps, reconciler, tasks
from nodeclusters.choices import ActionState, EventType, NodeClusterState, NodeState
from nodeclusters.models import Action, Event, Node, NodeCluster, Region
from nodeclusters.node_steps import landing
from nodeclusters.services import actions as action_services
from providers.models import SimulatedInstance
from providers.registry import get_driver
from providers.simulated import SimulatedDriver
from tests import factories

from .conftest import run_round

pytestmark = pytest.mark.django_db
RECONCILE = "nodeclusters.reconcile_node_cluster"


@pytest.fixture
def booting(settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    return settings


@pytest.fixture
def handed_off():
    """The engine tasks handed off so far as (name, args), in order (they go out when the test's transaction would
    commit), and how many hand-offs carried them (a batch is one)."""

    def tasks_and_batches() -> tuple[list, int]:
        found, batches = [], 0
        for _, callback, _ in connection.run_on_commit:
            if isinstance(callback, partial) and callback.func is action_services._enqueue:
                found.append((callback.args[0], tuple(callback.args[1])))
                batches += 1
            elif isinstance(callback, partial) and callback.func is action_services._enqueue_many:
                found += [(name, tuple(args)) for name, args in callback.args[0]]
                batches += 1
        return found, batches

    return tasks_and_batches


def booting_clusters(user, count: int, *, nodes: int = 3, **place) -> list[NodeCluster]:
    """`count` deployed clusters whose nodes' instances exist and boot for an hour (one round of steps each)."""
    clusters = []
    for number in range(count):
        cluster = factories.deploy(
            factories.make_cluster(
                user, name=f"{place.get('region_name', 'lon1')}-{number}", target_num_nodes=nodes, **place
            )
        )
        run_round(cluster.uuid)
        clusters.append(cluster)
    assert set(Node.objects.filter(node_cluster__in=clusters).values_list("state", flat=True)) == {NodeState.DEPLOYING}
    return clusters


def boot_now(nodes) -> None:
    """The instances of these nodes are running from now on."""
    SimulatedInstance.objects.filter(instance_id__in=[node.instance_id for node in nodes]).update(
        ready_at=timezone.now()
    )


def region_of(cluster: NodeCluster) -> int:
    return cluster.region_id


def polled(region_id, *, listing=None):
    """Run the region's poll with the simulated cloud's listings and lookups counted (`listing` replaces the real
    listing)."""
    with (
        mock.patch.object(
            SimulatedDriver, "list_nodes", autospec=True, side_effect=listing or SimulatedDriver.list_nodes
        ) as listings,
        mock.patch.object(SimulatedDriver, "get_node", autospec=True, side_effect=SimulatedDriver.get_node) as get_node,
        mock.patch.object(
            SimulatedDriver, "get_nodes", autospec=True, side_effect=SimulatedDriver.get_nodes
        ) as get_nodes,
    ):
        step = node_steps.region_poll_step(region_id)
    return step, listings, get_node, get_nodes


def test_one_listing_lands_the_booting_nodes_of_every_cluster_in_the_region(user, catalog, booting, handed_off):
    london = booting_clusters(user, 6)
    virginia = booting_clusters(user, 2, provider="aws", region_name="us-east-1", type_name="t2.micro")
    boot_now(Node.objects.all())
    before, _ = handed_off()

    step, listing, get_node, get_nodes = polled(region_of(london[0]))

    assert step.outcome is node_steps.Outcome.DONE
    assert listing.call_count == 1 and listing.call_args.kwargs == {"region": "lon1"}
    assert get_node.call_count == 0 and get_nodes.call_count == 0  # the listing had every one of them
    london_nodes = Node.objects.filter(node_cluster__in=london)
    assert london_nodes.count() == 18
    assert set(london_nodes.values_list("state", flat=True)) == {NodeState.DEPLOYED}
    for node in london_nodes.select_related("node_type"):
        assert node.public_ip and node.cpu == node.node_type.cpu and node.deployed_datetime is not None
    # Another region's nodes are that region's poll's: untouched.
    assert set(Node.objects.filter(node_cluster__in=virginia).values_list("state", flat=True)) == {NodeState.DEPLOYING}
    # Every landing wrote its event and its log line.
    assert Event.objects.filter(type=EventType.NODE, state=NodeState.DEPLOYED).count() == 18
    for cluster in london:
        logs = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy").logs
        assert logs.count("; deployed") == 3
    # One reconcile per cluster whose last node landed.
    after, _ = handed_off()
    assert sorted(after[len(before) :]) == sorted((RECONCILE, (str(cluster.uuid),)) for cluster in london)


def test_the_clusters_landed_are_reconciled_in_one_batch(user, catalog, booting, handed_off):
    clusters = booting_clusters(user, 4)
    boot_now(Node.objects.all())
    _, batches_before = handed_off()
    node_steps.region_poll_step(region_of(clusters[0]))
    _, batches = handed_off()
    assert batches == batches_before + 1
    for cluster in clusters:  # and the reconciles converge them
        assert reconciler.reconcile_node_cluster(cluster.uuid).state == NodeClusterState.DEPLOYED
        action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
        assert action.state == ActionState.SUCCESS


def test_a_cluster_with_nodes_still_booting_waits_for_its_last_one(user, catalog, booting, handed_off):
    done, waiting = booting_clusters(user, 2)
    boot_now(Node.objects.filter(node_cluster=done))
    boot_now(Node.objects.filter(node_cluster=waiting).order_by("created_at")[:2])
    before, _ = handed_off()
    with mock.patch.object(node_steps.poll, "engine_schedule") as schedule:
        step = node_steps.region_poll_step(done.region_id)
    assert step.outcome is node_steps.Outcome.WAITING
    states = Counter(Node.objects.filter(node_cluster=waiting).values_list("state", flat=True))
    assert states == {NodeState.DEPLOYED: 2, NodeState.DEPLOYING: 1}
    after, _ = handed_off()
    assert after[len(before) :] == [(RECONCILE, (str(done.uuid),))]  # not the cluster with a node still booting
    # The region is polled again, once, whatever else asks meanwhile (a deploy step handing over its instance).
    node_steps.schedule_region_poll(done.region_id)
    schedule.assert_called_once_with("nodeclusters.poll_region", done.region_id, countdown=mock.ANY)
    assert booting.ENGINE_POLL_INTERVAL - 1 < schedule.call_args.kwargs["countdown"] <= booting.ENGINE_POLL_INTERVAL
    assert Region.objects.get(pk=done.region_id).next_poll_at is not None


def test_a_node_that_moved_on_meanwhile_is_not_overwritten(user, catalog, booting):
    """Between the listing and the landing (the poll holds no lease), one node is scaled away, one gets another
    instance, one is claimed by a deploy step that lands it itself: the poll writes none of them."""
    (cluster,) = booting_clusters(user, 1, nodes=4)
    scaled_away, replaced, claimed, plain = cluster.nodes.order_by("created_at")
    boot_now([scaled_away, replaced, claimed, plain])
    real_listing = SimulatedDriver.list_nodes

    def listing_then_changes(self, *, region):
        instances = real_listing(self, region=region)
        Node.objects.filter(pk=scaled_away.pk).update(state=NodeState.TERMINATING)
        Node.objects.filter(pk=replaced.pk).update(instance_id="sim-another")
        # A deploy step lands this one meanwhile, with its own figures: the poll must not write over them.
        Node.objects.filter(pk=claimed.pk).update(state=NodeState.DEPLOYED, public_ip="203.0.113.9")
        return instances

    with mock.patch.object(SimulatedDriver, "list_nodes", autospec=True, side_effect=listing_then_changes):
        node_steps.region_poll_step(cluster.region_id)
    rows = {node.pk: node for node in Node.objects.filter(node_cluster=cluster)}
    assert rows[scaled_away.pk].state == NodeState.TERMINATING and rows[scaled_away.pk].public_ip is None
    assert rows[replaced.pk].state == NodeState.DEPLOYING and rows[replaced.pk].instance_id == "sim-another"
    assert rows[claimed.pk].public_ip == "203.0.113.9"
    assert rows[plain.pk].state == NodeState.DEPLOYED
    landed = Event.objects.filter(type=EventType.NODE, state=NodeState.DEPLOYED).values_list("object_uuid", flat=True)
    assert list(landed) == [plain.pk]  # an event for the one the poll moved, none for the others


def test_a_deploy_steps_landing_is_fenced_by_its_lease(user, catalog, booting):
    """The deploy step's own landing (its instance ran at once) writes nothing once another task holds the node."""
    (cluster,) = booting_clusters(user, 1, nodes=1)
    node = Node.objects.select_related("node_cluster", "node_type").get(node_cluster=cluster)
    boot_now([node])
    instance = get_driver("digitalocean").get_node(instance_id=node.instance_id, region="lon1")
    Node.objects.filter(pk=node.pk).update(lease_token="another-task", lease_until=timezone.now())
    landed, skipped = landing._nodes_deployed([(node, instance)], token="this-step")
    assert (landed, skipped) == (set(), [node.pk])
    assert Node.objects.get(pk=node.pk).state == NodeState.DEPLOYING
    Node.objects.filter(pk=node.pk).update(lease_token="this-step")
    assert landing._nodes_deployed([(node, instance)], token="this-step") == ({cluster.pk}, [])
    assert Node.objects.get(pk=node.pk).state == NodeState.DEPLOYED


def test_vanished_and_timed_out_instances_fail_their_nodes_once(user, catalog, booting, handed_off, settings):
    first, second = booting_clusters(user, 2, nodes=2)
    gone = first.nodes.order_by("created_at").first()
    SimulatedInstance.objects.filter(instance_id=gone.instance_id).update(terminated_at=timezone.now())
    settings.ENGINE_DEPLOY_TIMEOUT = 3600
    late = second.nodes.order_by("created_at").first()
    Node.objects.filter(pk=late.pk).update(created_at=timezone.now() - timezone.timedelta(hours=2))
    before, _ = handed_off()
    node_steps.region_poll_step(first.region_id)
    gone.refresh_from_db()
    late.refresh_from_db()
    assert gone.state == NodeState.TERMINATING and "disappeared while deploying" in gone.failure_reason
    assert late.state == NodeState.TERMINATING and "after the deploy timeout" in late.failure_reason
    after, _ = handed_off()
    # Both clusters reconcile at once (a replacement and a clean-up to schedule), once each; their other nodes
    # still boot, so the region is polled again.
    reconciles = sorted(task for task in after[len(before) :] if task[0] == RECONCILE)
    assert reconciles == sorted((RECONCILE, (str(cluster.uuid),)) for cluster in (first, second))
    assert ("nodeclusters.poll_region", (str(first.region_id),)) in after[len(before) :]
    assert (
        f"Node {gone.uuid}: deploy failed" in Action.objects.get(node_cluster=first, action="Node Cluster Deploy").logs
    )


def test_instances_missing_from_the_listing_are_looked_up_together(user, catalog, booting):
    clusters = booting_clusters(user, 3, nodes=2)
    boot_now(Node.objects.all())
    lagging = Node.objects.filter(node_cluster__in=clusters).order_by("created_at")[:4]
    lagging_ids = {node.instance_id for node in lagging}
    real_listing = SimulatedDriver.list_nodes

    def lagging_listing(self, *, region):  # a listing that does not show the newest creates yet
        return [instance for instance in real_listing(self, region=region) if instance.instance_id not in lagging_ids]

    step, _, get_node, get_nodes = polled(clusters[0].region_id, listing=lagging_listing)
    assert get_nodes.call_count == 1 and set(get_nodes.call_args.kwargs["instance_ids"]) == lagging_ids
    assert get_node.call_count == 0
    assert set(Node.objects.filter(node_cluster__in=clusters).values_list("state", flat=True)) == {NodeState.DEPLOYED}
    assert step.outcome is node_steps.Outcome.DONE


def test_a_poll_queued_per_cluster_before_the_upgrade_becomes_its_regions_poll(user, catalog, booting):
    (cluster,) = booting_clusters(user, 1)
    Region.objects.filter(pk=cluster.region_id).update(next_poll_at=None)
    with mock.patch.object(node_steps.poll, "engine_schedule") as schedule:
        assert tasks.poll_node_cluster(str(cluster.uuid)) == "done"
    schedule.assert_called_once_with("nodeclusters.poll_region", cluster.region_id, countdown=mock.ANY)


def test_steps_handing_over_while_this_process_has_a_poll_coming_ask_the_database_nothing(
    user, booting, django_capture_on_commit_callbacks
):
    (cluster,) = booting_clusters(user, 1)
    Region.objects.filter(pk=cluster.region_id).update(next_poll_at=None)
    with mock.patch.object(node_steps.poll, "engine_schedule") as schedule:
        with django_capture_on_commit_callbacks(execute=True):  # as it commits outside a test's transaction
            node_steps.schedule_region_poll(cluster.region_id)  # claims the region's next poll
        with CaptureQueriesContext(connection) as queries:
            for _ in range(50):  # the deploy steps of a fleet handing their instances over meanwhile
                node_steps.schedule_region_poll(cluster.region_id)
    schedule.assert_called_once()
    assert queries.captured_queries == []
    Region.objects.filter(pk=cluster.region_id).update(next_poll_at=None)  # the poll started; it may be claimed
    node_steps.poll.region_polls_forget()  # another process, which scheduled nothing itself
    with mock.patch.object(node_steps.poll, "engine_schedule") as schedule:
        node_steps.schedule_region_poll(cluster.region_id)
    schedule.assert_called_once()
