"""The batched poll on PostgreSQL: a node row another transaction holds is skipped (not waited for, not overwritten)
and landed by the next poll; and real workers watch a fleet in two regions with one listing per region per interval."""

import threading
import time
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import CollectorRegistry, multiprocess

from nodeclusters import node_steps, reconciler
from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Event, Node, NodeCluster
from nodeclusters.services import actions as action_services
from providers.models import SimulatedInstance
from tests import factories
from tests.support.engine import wait_until

pytestmark = pytest.mark.integration


def booting_cluster(user, name: str, *, nodes: int, region_name: str = "lon1") -> NodeCluster:
    """A deployed cluster whose nodes' instances exist (created by the deploy steps, run here) and are booting."""
    cluster = factories.deploy(factories.make_cluster(user, name=name, region_name=region_name, target_num_nodes=nodes))
    reconciler.reconcile_node_cluster(cluster.uuid)
    for node in cluster.nodes.all():
        node_steps.node_deploy_step(node.uuid)
    return cluster


def test_a_node_row_held_by_another_transaction_is_skipped_and_landed_next_time(postgres, user, catalog, settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SIMULATED_BOOT_SECONDS = 3600
    with mock.patch.object(action_services, "_enqueue"), mock.patch.object(action_services, "_enqueue_many"):
        first = booting_cluster(user, "first", nodes=2)
        second = booting_cluster(user, "second", nodes=2)
        SimulatedInstance.objects.update(ready_at=timezone.now())
        held = first.nodes.order_by("created_at").first()
        locked, release = threading.Event(), threading.Event()

        def hold_the_row():  # as a step's fenced write or a reconcile's scale-in would, for as long as the test says
            try:
                with transaction.atomic():
                    Node.objects.select_for_update().filter(pk=held.pk).get()
                    locked.set()
                    release.wait(timeout=30)
            finally:
                connection.close()

        holder = threading.Thread(target=hold_the_row)
        holder.start()
        try:
            assert locked.wait(timeout=10)
            started = time.monotonic()
            step = node_steps.region_poll_step(first.region_id)
            assert time.monotonic() - started < 5  # skipped, not waited for
        finally:
            release.set()
            holder.join(timeout=30)
        assert step.outcome is node_steps.Outcome.WAITING  # the held node is still booting as far as the poll knows
        states = dict(Node.objects.values_list("pk", "state"))
        assert states.pop(held.pk) == NodeState.DEPLOYING
        assert set(states.values()) == {NodeState.DEPLOYED}
        assert node_steps.region_poll_step(first.region_id).outcome is node_steps.Outcome.DONE
    held.refresh_from_db()
    assert held.state == NodeState.DEPLOYED and held.public_ip
    assert Event.objects.filter(object_uuid=held.pk, state=NodeState.DEPLOYED).count() == 1
    assert second.nodes.filter(state=NodeState.DEPLOYED).count() == 2


def listings_by_provider() -> dict:
    """list_nodes calls every process has made so far, by provider (the shared Prometheus files)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    calls = {}
    for metric in registry.collect():
        if metric.name == "tutum_provider_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["operation"] == "list_nodes":
                    provider = sample.labels["provider"]
                    calls[provider] = calls.get(provider, 0) + sample.value
    return calls


def test_real_workers_watch_a_fleet_with_one_listing_per_region_per_interval(start_engine, user, catalog):
    interval, boot = 0.5, 3.0
    engine = start_engine(
        env={"SIMULATE_PROVIDERS": "1", "SIMULATED_BOOT_SECONDS": str(boot), "ENGINE_POLL_INTERVAL": str(interval)},
        beat=False,
    )
    before = listings_by_provider()
    started = time.monotonic()
    places = [("digitalocean", "lon1", "1gb"), ("aws", "us-east-1", "t2.micro")]
    clusters = [
        factories.deploy(
            factories.make_cluster(
                user,
                name=f"{region}-{number}",
                provider=provider,
                region_name=region,
                type_name=type_name,
                target_num_nodes=3,
            )
        )
        for provider, region, type_name in places
        for number in range(5)
    ]

    def converged():
        return (
            not NodeCluster.objects.filter(pk__in=[c.pk for c in clusters])
            .exclude(state=NodeClusterState.DEPLOYED)
            .exists()
        )

    wait_until(converged, timeout=120, what="ten clusters in two regions to deploy", engine=engine)
    elapsed = time.monotonic() - started
    assert Node.objects.filter(node_cluster__in=clusters, state=NodeState.DEPLOYED).count() == 30
    after = listings_by_provider()
    for provider, _, _ in places:
        listings = after.get(provider, 0) - before.get(provider, 0)
        # At most one listing per interval for the region (plus one in flight at each end, and one a deploy step
        # may schedule while a poll runs: a running poll frees the slot before it lists), while its nodes boot for
        # `boot` seconds; a poll per cluster would have listed the region five times an interval.
        assert 1 <= listings <= elapsed / interval + 3, (provider, listings, elapsed)
        assert listings < 5 * boot / interval
