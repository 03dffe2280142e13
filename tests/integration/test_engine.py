"""The engine end to end: HTTP API in the test process, real Celery worker processes, Redis, PostgreSQL, moto."""

import threading

import pytest
from django.db import connection

from nodeclusters import node_steps, reconciler
from nodeclusters.choices import NodeClusterState, NodeState
from nodeclusters.models import Action, Node, NodeCluster
from providers.models import SimulatedInstance
from tests import factories
from tests.support.engine import wait_until
from tests.support.moto_server import running_instances

pytestmark = pytest.mark.integration
AWS_CLUSTER = {
    "name": "integration",
    "region": "/api/v1/region/aws/us-east-1/",
    "node_type": "/api/v1/nodetype/aws/t2.micro/",
}


def wait_for_state(cluster_uuid, state, engine, timeout=90):
    def reached():
        cluster = NodeCluster.objects.get(pk=cluster_uuid)
        return cluster if cluster.state == state else None

    return wait_until(reached, timeout=timeout, what=f"cluster {cluster_uuid} to be {state}", engine=engine)


def assert_instances_match_nodes(ec2, cluster_uuid, count):
    instances = running_instances(ec2)
    nodes = dict(
        Node.objects.filter(node_cluster_id=cluster_uuid, state=NodeState.DEPLOYED).values_list("instance_id", "uuid")
    )
    assert len(instances) == count, instances
    assert {instance_id: str(uuid) for instance_id, uuid in nodes.items()} == instances


def test_deploy_scale_and_terminate_on_aws(client, aws_engine, ec2):
    engine = aws_engine()
    response = client.post("/api/v1/nodecluster/", {**AWS_CLUSTER, "target_num_nodes": 3}, format="json")
    assert response.status_code == 201
    uuid = response.json()["uuid"]
    assert client.post(f"/api/v1/nodecluster/{uuid}/deploy/").status_code == 202
    cluster = wait_for_state(uuid, NodeClusterState.DEPLOYED, engine)
    assert cluster.deployed_datetime is not None
    assert_instances_match_nodes(ec2, uuid, 3)
    zones = set(Node.objects.filter(node_cluster_id=uuid).values_list("availability_zone__name", flat=True))
    assert len(zones) == 3  # spread over the region's zones

    assert client.patch(f"/api/v1/nodecluster/{uuid}/", {"target_num_nodes": 5}, format="json").status_code == 202
    wait_for_state(uuid, NodeClusterState.DEPLOYED, engine)
    assert_instances_match_nodes(ec2, uuid, 5)

    assert client.patch(f"/api/v1/nodecluster/{uuid}/", {"target_num_nodes": 1}, format="json").status_code == 202
    wait_for_state(uuid, NodeClusterState.DEPLOYED, engine)
    assert_instances_match_nodes(ec2, uuid, 1)

    assert client.delete(f"/api/v1/nodecluster/{uuid}/").status_code == 202
    cluster = wait_for_state(uuid, NodeClusterState.TERMINATED, engine)
    assert cluster.destroyed_datetime is not None
    assert running_instances(ec2) == {}
    actions = client.get(f"/api/v1/action/?object=/api/v1/nodecluster/{uuid}/").json()["objects"]
    assert {action["action"]: action["state"] for action in actions} == {
        "Node Cluster Create": "Success",
        "Node Cluster Deploy": "Success",
        "Node Cluster Scale": "Success",
        "Node Cluster Terminate": "Success",
    }


def test_two_reconciles_at_once_create_no_twin(postgres, user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=6))
    barrier = threading.Barrier(2)
    results = []

    def reconcile():
        try:
            barrier.wait(timeout=10)
            results.append(reconciler.reconcile_node_cluster(cluster.uuid))
        finally:
            connection.close()

    threads = [threading.Thread(target=reconcile) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(len(result.created) for result in results) == [0, 6]
    assert cluster.nodes.count() == 6


def test_two_steps_for_one_node_at_once_make_one_instance(postgres, user, catalog, settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SIMULATED_BOOT_SECONDS = 60
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    reconciler.reconcile_node_cluster(cluster.uuid)
    node = cluster.nodes.get()
    barrier = threading.Barrier(4)
    outcomes = []

    def step():
        try:
            barrier.wait(timeout=10)
            outcomes.append(node_steps.node_deploy_step(node.uuid).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert SimulatedInstance.objects.filter(node_uuid=str(node.uuid)).count() == 1
    assert node_steps.Outcome.WAITING in outcomes


def test_injected_create_failures_still_converge_and_are_cleaned_up(client, start_engine):
    engine = start_engine(
        env={
            "SIMULATE_PROVIDERS": "1",
            "SIMULATED_FAILURE_RATE": "0.3",
            "SIMULATED_SEED": "faults",
            "SIMULATED_BOOT_SECONDS": "0.5",
        }
    )
    uuid = client.post(
        "/api/v1/nodecluster/",
        {
            "name": "faulty",
            "region": "/api/v1/region/digitalocean/lon1/",
            "node_type": "/api/v1/nodetype/digitalocean/1gb/",
            # 20 creates at 30 %: a run without a single failure (0.7**20, under 0.1 %) would prove nothing.
            "target_num_nodes": 20,
        },
        format="json",
    ).json()["uuid"]
    client.post(f"/api/v1/nodecluster/{uuid}/deploy/")
    cluster = wait_until(
        lambda: (
            NodeCluster.objects.filter(pk=uuid)
            .exclude(state__in=[NodeClusterState.DEPLOYING, NodeClusterState.SCALING])
            .first()
        ),
        timeout=120,
        what="the deploy to settle",
        engine=engine,
    )
    live = SimulatedInstance.objects.filter(terminated_at__isnull=True)
    up = Node.objects.filter(node_cluster_id=uuid, state=NodeState.DEPLOYED)
    failed = SimulatedInstance.objects.filter(failed=True)
    action = Action.objects.get(node_cluster_id=uuid, action="Node Cluster Deploy")
    assert failed.exists()
    assert not failed.filter(terminated_at__isnull=True).exists()  # every failed instance cleaned up
    assert sorted(live.values_list("instance_id", flat=True)) == sorted(up.values_list("instance_id", flat=True))
    assert action.logs.count("deploy failed: simulated") == failed.count()
    if cluster.state == NodeClusterState.DEPLOYED:
        assert up.count() == 20
    else:  # the failure budget ran out: what is up stays up, and the action says why
        assert cluster.state == NodeClusterState.PARTLY_DEPLOYED
        assert action.state == "Failed" and "Gave up" in action.logs
