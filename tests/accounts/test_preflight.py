"""Preflight: deploy, scale-up and create are refused at once, with structured reasons, and change nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Action, Event, Node, NodeCluster, NodeType, Region
from nodeclusters.services.preflight import preflight_check
from providers.base import TransientProviderError
from providers.simulated import SimulatedDriver
from tests import factories
from tests.api.helpers import assert_error, cluster_url

from .conftest import link

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def simulated_cloud(settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SHARED_PROVIDER_ACCOUNTS = ["*"]
    settings.SIMULATED_NODE_LIMIT = 0


def snapshot():
    return {
        "clusters": list(NodeCluster.objects.values_list("uuid", "state", "target_num_nodes").order_by("uuid")),
        "nodes": Node.objects.count(),
        "actions": Action.objects.count(),
        "events": Event.objects.count(),
    }


def refused(response, code: str) -> dict:
    """A 409 preflight refusal carrying exactly one reason, `code`; that reason."""
    body = assert_error(response, 409)
    assert [reason["code"] for reason in body["reasons"]] == [code], body
    reason = body["reasons"][0]
    assert isinstance(reason["message"], str) and reason["message"] in body["error"]
    return reason


def test_no_credentials(client, user, settings):
    settings.SHARED_PROVIDER_ACCOUNTS = []
    cluster = factories.make_cluster(user, target_num_nodes=2)
    before = snapshot()

    reason = refused(client.post(cluster_url(cluster, "deploy/")), "no_credentials")

    assert "PUT /api/v1/provider/digitalocean/credentials/" in reason["message"]
    assert snapshot() == before
    link(client, token="my-own-token-1")
    assert client.post(cluster_url(cluster, "deploy/")).status_code == 202


def test_quota_exceeded_names_limit_in_use_and_requested(client, user, settings):
    settings.SIMULATED_NODE_LIMIT = 3
    cluster = factories.make_cluster(user, target_num_nodes=4)
    before = snapshot()

    reason = refused(client.post(cluster_url(cluster, "deploy/")), "quota_exceeded")

    assert (reason["limit"], reason["in_use"], reason["requested"]) == (3, 0, 4)
    assert snapshot() == before


def test_scale_up_past_the_quota_is_refused_and_changes_nothing(client, user, settings):
    settings.SIMULATED_NODE_LIMIT = 3
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    for _ in range(2):
        factories.make_node(cluster, state=NodeState.DEPLOYED)
    NodeCluster.objects.filter(pk=cluster.pk).update(state=NodeClusterState.DEPLOYED)
    before = snapshot()

    reason = refused(client.patch(cluster_url(cluster), {"target_num_nodes": 6}, format="json"), "quota_exceeded")

    assert (reason["limit"], reason["requested"]) == (3, 4)
    assert snapshot() == before
    assert client.patch(cluster_url(cluster), {"target_num_nodes": 1}, format="json").status_code == 202  # down


def test_scale_before_deploy_only_changes_the_target(client, user, settings):
    settings.SIMULATED_NODE_LIMIT = 1
    cluster = factories.make_cluster(user, target_num_nodes=1)
    assert client.patch(cluster_url(cluster), {"target_num_nodes": 5}, format="json").status_code == 200


def test_node_type_and_region_unavailable(client, user):
    cluster = factories.make_cluster(user)
    NodeType.objects.filter(provider__name="digitalocean", name="s-1vcpu-1gb").update(available=False)
    before = snapshot()

    reason = refused(client.post(cluster_url(cluster, "deploy/")), "node_type_unavailable")
    assert "s-1vcpu-1gb" in reason["message"]  # the alias's target is what is gone

    NodeType.objects.update(available=True)
    Region.objects.filter(provider__name="digitalocean", name="lon1").update(available=False)
    refused(client.post(cluster_url(cluster, "deploy/")), "region_unavailable")
    assert snapshot() == before


def test_user_limits(client, user, settings):
    settings.MAX_NODES_PER_USER = 3
    settings.MAX_CLUSTERS_PER_USER = 1
    cluster = factories.make_cluster(user, target_num_nodes=4)
    before = snapshot()

    reason = refused(client.post(cluster_url(cluster, "deploy/")), "user_limit")
    assert (reason["limit"], reason["in_use"], reason["requested"]) == (3, 0, 4)
    body = {
        "name": "second",
        "region": "/api/v1/region/digitalocean/lon1/",
        "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    }
    reason = refused(client.post("/api/v1/nodecluster/", body, format="json"), "user_limit")
    assert (reason["limit"], reason["in_use"], reason["requested"]) == (1, 1, 1)
    assert snapshot() == before


def test_several_reasons_at_once(user, settings):
    settings.SHARED_PROVIDER_ACCOUNTS = []
    settings.MAX_NODES_PER_USER = 1
    reasons = preflight_check(
        owner=user, node_type=factories.node_type(), region=factories.region(), add_nodes=2, new_clusters=0
    )
    assert [reason["code"] for reason in reasons] == ["no_credentials", "user_limit"]


def test_an_unreadable_quota_does_not_block_the_deploy(client, user, settings, monkeypatch):
    settings.SIMULATED_NODE_LIMIT = 1

    def unreadable(self, *, region):
        raise TransientProviderError("simulated: quota service timed out")

    monkeypatch.setattr(SimulatedDriver, "get_quota", unreadable)
    cluster = factories.make_cluster(user, target_num_nodes=3)
    assert client.post(cluster_url(cluster, "deploy/")).status_code == 202


def test_preflight_check_only_reads(user, settings):
    settings.SIMULATED_NODE_LIMIT = 1
    settings.MAX_NODES_PER_USER = 1
    settings.MAX_CLUSTERS_PER_USER = 1
    factories.make_cluster(user)
    with CaptureQueriesContext(connection) as queries:
        reasons = preflight_check(
            owner=user, node_type=factories.node_type(), region=factories.region(), add_nodes=5, new_clusters=1
        )
    assert {reason["code"] for reason in reasons} == {"quota_exceeded", "user_limit"}
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []


def test_the_engine_rechecks_a_node_refused_for_quota_fails_with_that_code(user, settings, monkeypatch):
    from tests.reconciler.conftest import run_round

    settings.SIMULATED_NODE_LIMIT = 1
    settings.SIMULATED_BOOT_SECONDS = 0
    monkeypatch.setattr(SimulatedDriver, "get_quota", lambda self, *, region: None)  # a race the preflight missed
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))

    run_round(cluster.uuid)

    failed = Node.objects.filter(node_cluster=cluster).exclude(failure_reason_code="")
    assert failed.exists()
    assert set(failed.values_list("failure_reason_code", flat=True)) == {"quota_exceeded"}


@pytest.mark.django_db(transaction=True)
def test_the_provider_is_asked_for_the_quota_outside_any_transaction(client, user, settings, monkeypatch):
    """No provider call holds a row lock: deploy and scale-up read the quota before their service's transaction."""
    settings.SIMULATED_NODE_LIMIT = 3
    reads = []
    real_get_quota = SimulatedDriver.get_quota

    def get_quota(self, *, region):
        reads.append(connection.in_atomic_block)
        return real_get_quota(self, region=region)

    monkeypatch.setattr(SimulatedDriver, "get_quota", get_quota)
    cluster = factories.make_cluster(user, target_num_nodes=2)

    assert client.post(cluster_url(cluster, "deploy/")).status_code == 202
    refusal = refused(client.patch(cluster_url(cluster), {"target_num_nodes": 5}, format="json"), "quota_exceeded")
    assert refusal["limit"] == 3

    assert reads == [False, False]
