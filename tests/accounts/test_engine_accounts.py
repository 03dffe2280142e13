"""The engine works with each cluster owner's own account: DigitalOcean's real driver against an API double that
keeps each token's droplets apart (the issue's "done when", end to end but for the worker processes)."""

import pytest

from nodeclusters import node_steps, reconciler
from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Node, NodeCluster
from nodeclusters.services.accounts import NoCredentials, driver_for
from tests import factories
from tests.api.helpers import assert_error, cluster_url

from .conftest import link

pytestmark = pytest.mark.django_db
ALICE, MALLORY = "alice-token-1234", "mallory-token-9876"


def create_and_deploy(api_client, *, target: int, type_name: str = "1gb") -> NodeCluster:
    body = {
        "name": "web",
        "region": "/api/v1/region/digitalocean/lon1/",
        "node_type": f"/api/v1/nodetype/digitalocean/{type_name}/",
        "target_num_nodes": target,
    }
    created = api_client.post("/api/v1/nodecluster/", body, format="json")
    assert created.status_code == 201, created.content
    cluster = NodeCluster.objects.get(uuid=created.json()["uuid"])
    deployed = api_client.post(cluster_url(cluster, "deploy/"))
    assert deployed.status_code == 202, deployed.content
    return cluster


def converge(*clusters, rounds: int = 10) -> None:
    """Reconcile, run every node step, and poll the region: what the workers would do, in process."""
    for _ in range(rounds):
        for cluster in clusters:
            reconciler.reconcile_node_cluster(cluster.uuid)
        for node in Node.objects.filter(state=NodeState.DEPLOYING).order_by("created_at"):
            node_steps.node_deploy_step(node.uuid)
        for node in Node.objects.filter(state=NodeState.TERMINATING):
            node_steps.node_terminate_step(node.uuid)
        node_steps.region_poll_step(factories.region().pk)
        for cluster in clusters:
            reconciler.reconcile_node_cluster(cluster.uuid)
        states = set(NodeCluster.objects.filter(pk__in=[c.pk for c in clusters]).values_list("state", flat=True))
        if states <= {NodeClusterState.DEPLOYED, NodeClusterState.TERMINATED}:
            return
    raise AssertionError(f"clusters still {states}")


def test_each_user_deploys_with_their_own_token_and_todays_size(
    client, other_client, user, other_user, digitalocean_api
):
    assert link(client, token=ALICE).status_code == 200
    assert link(other_client, token=MALLORY).status_code == 200
    assert link(client, token=ALICE).json()["limits"]["droplet_limit"] == 3

    mine = create_and_deploy(client, target=2, type_name="1gb")
    theirs = create_and_deploy(other_client, target=1, type_name="4gb")
    converge(mine, theirs)

    assert [body["size"] for body in digitalocean_api.created_with[ALICE]] == ["s-1vcpu-1gb", "s-1vcpu-1gb"]
    assert [body["size"] for body in digitalocean_api.created_with[MALLORY]] == ["s-2vcpu-4gb"]
    alice_ids = {str(droplet_id) for droplet_id in digitalocean_api.by_token[ALICE]}
    mallory_ids = {str(droplet_id) for droplet_id in digitalocean_api.by_token[MALLORY]}
    assert set(Node.objects.filter(owner=user).values_list("instance_id", flat=True)) == alice_ids
    assert set(Node.objects.filter(owner=other_user).values_list("instance_id", flat=True)) == mallory_ids
    assert Node.objects.filter(state=NodeState.DEPLOYED).count() == 3
    assert client.get(cluster_url(mine)).json()["state"] == "Deployed"


def test_a_scale_past_the_droplet_limit_is_refused_at_once(client, user, digitalocean_api):
    link(client, token=ALICE)
    cluster = create_and_deploy(client, target=2)
    converge(cluster)
    requests_before = len(digitalocean_api.requests)

    response = client.patch(cluster_url(cluster), {"target_num_nodes": 4}, format="json")

    body = assert_error(response, 409)
    assert body["reasons"] == [
        {
            "code": "quota_exceeded",
            "message": body["reasons"][0]["message"],
            "limit": 3,
            "in_use": 2,
            "requested": 2,
            "unit": "droplets",
        }
    ]
    assert NodeCluster.objects.get(pk=cluster.pk).target_num_nodes == 2
    assert all(method == "GET" for _, method, _ in digitalocean_api.requests[requests_before:])
    assert client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json").status_code == 202


def test_a_user_without_credentials_is_refused(other_client, digitalocean_api):
    body = {
        "name": "web",
        "region": "/api/v1/region/digitalocean/lon1/",
        "node_type": "/api/v1/nodetype/digitalocean/1gb/",
    }
    cluster = NodeCluster.objects.get(
        uuid=other_client.post("/api/v1/nodecluster/", body, format="json").json()["uuid"]
    )

    refusal = assert_error(other_client.post(cluster_url(cluster, "deploy/")), 409)

    assert refusal["reasons"][0]["code"] == "no_credentials"
    assert NodeCluster.objects.get(pk=cluster.pk).state == NodeClusterState.INIT
    assert digitalocean_api.requests == []


def test_terminate_and_the_leak_sweep_use_the_owners_account(client, user, digitalocean_api):
    from nodeclusters import tasks

    link(client, token=ALICE)
    cluster = create_and_deploy(client, target=1)
    converge(cluster)
    leaked = digitalocean_api.add_droplet(name="leak", region="lon1", tags=["tutum-managed-by:tutum-api"])
    digitalocean_api.by_token[ALICE][leaked["id"]] = digitalocean_api.droplets.pop(leaked["id"], leaked)

    assert tasks.reap_leaked_instances() == 1
    assert client.delete(cluster_url(cluster)).status_code == 202
    converge(cluster)

    assert digitalocean_api.by_token[ALICE] == {} and digitalocean_api.by_token[MALLORY] == {}
    assert digitalocean_api.tokens_used() == {ALICE}


def test_nothing_falls_back_to_the_operators_account(user, digitalocean_api, settings):
    settings.DIGITALOCEAN_TOKEN = "operator-token"
    with pytest.raises(NoCredentials) as refused:
        driver_for(owner=user, provider_name="digitalocean")
    assert refused.value.reason_code == "no_credentials"
    settings.SHARED_PROVIDER_ACCOUNTS = ["digitalocean"]
    assert driver_for(owner=user, provider_name="digitalocean").token == "operator-token"


def test_nodes_on_the_shared_account_stay_reachable_after_sharing_stops(client, user, digitalocean_api, settings):
    settings.DIGITALOCEAN_TOKEN = ALICE  # the operator's own account, in the double
    settings.SHARED_PROVIDER_ACCOUNTS = ["digitalocean"]
    cluster = create_and_deploy(client, target=2)
    converge(cluster)
    assert len(digitalocean_api.by_token[ALICE]) == 2

    settings.SHARED_PROVIDER_ACCOUNTS = []
    # Nothing new goes into the operator's account any more...
    refusal = assert_error(client.patch(cluster_url(cluster), {"target_num_nodes": 3}, format="json"), 409)
    assert [reason["code"] for reason in refusal["reasons"]] == ["no_credentials"]
    # ...but what is there is still health-checked and terminated there: no node is stranded, no droplet leaked.
    assert client.post(f"/api/v1/node/{cluster.nodes.first().uuid}/health-check/").status_code == 202
    assert client.delete(cluster_url(cluster)).status_code == 202
    converge(cluster)
    assert digitalocean_api.by_token[ALICE] == {}
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.TERMINATED}
