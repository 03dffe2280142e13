"""Fault injection with real processes: a killed worker, a broker outage, a database restart, failing creates,
a burst of concurrent scales and a leak made on purpose. Every test is bounded in time and request count."""

import os
import random
import shutil
import subprocess
import threading
import time
import uuid as uuid_module
from pathlib import Path

import pytest
from django.db import connection

from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, Node, NodeCluster
from providers.base import CLUSTER_UUID_TAG, NODE_UUID_TAG, OWNER_TAG
from tests.support.engine import PrivateRedis, wait_until
from tests.support.faulty_proxy import FaultyProxy
from tests.support.moto_server import running_instances as running_ec2

from .helpers import AWS_CLUSTER, SIMULATED, Api, deployed_instance_ids, live_simulated, wait_settled

pytestmark = pytest.mark.integration


def test_a_worker_killed_during_a_scale_up_leaves_exactly_the_target(user, aws_engine, ec2):
    engine = aws_engine(concurrency=2)
    api = Api(engine.start_web(), user)
    uuid = api.create_cluster("killed", 0, AWS_CLUSTER)
    wait_settled([uuid], engine)
    assert api.call("PATCH", f"/api/v1/nodecluster/{uuid}/", {"target_num_nodes": 10}).status_code == 202
    wait_until(
        lambda: Node.objects.filter(node_cluster_id=uuid).exclude(instance_id="").count() >= 2,
        timeout=60,
        what="the first instances",
        engine=engine,
    )
    engine.kill_worker(engine.workers[0])
    assert Node.objects.filter(node_cluster_id=uuid, state=NodeState.DEPLOYED).count() < 10
    engine.start_worker()
    (cluster,) = wait_settled([uuid], engine, timeout=120)
    assert cluster.state == NodeClusterState.DEPLOYED
    wait_until(lambda: len(running_ec2(ec2)) == 10, timeout=20, what="exactly 10 instances", engine=engine)
    instances = running_ec2(ec2)
    assert sorted(instances) == deployed_instance_ids(uuid)  # none leaked, none duplicated
    assert len(set(instances.values())) == 10


def settled_with_supervised_workers(uuids, engine, *, timeout: float):
    """`wait_settled`, starting again any worker that exited, as `make run`'s and compose's supervisors do: a worker
    may exit around a broker outage (Celery's shutdown can fail acking to a dead connection: seen once in three full
    PostgreSQL runs of this change); what the test asserts is that no accepted request is lost once workers run
    again."""
    deadline = time.monotonic() + timeout
    while True:
        for worker in list(engine.workers):
            if worker.poll() is not None:
                engine.workers.remove(worker)
                engine.start_worker()
        try:
            return wait_settled(uuids, engine, timeout=5)
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_a_broker_outage_loses_no_accepted_request(user, start_engine, tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        engine = start_engine(env=SIMULATED, broker=redis.url)
        api = Api(engine.start_web(), user)
        uuids = [api.create_cluster(f"outage-{index}", 1) for index in range(6)]
        wait_settled(uuids, engine)

        redis.stop()
        accepted_targets, deleted, reads = {}, set(), []
        rng = random.Random(5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(reads) < 60:
            uuid = rng.choice(uuids)
            if uuid in deleted:
                continue
            if rng.random() < 0.2:
                response = api.call("DELETE", f"/api/v1/nodecluster/{uuid}/")
                if response.ok:
                    deleted.add(uuid)
            else:
                target = rng.randint(0, 3)
                response = api.call("PATCH", f"/api/v1/nodecluster/{uuid}/", {"target_num_nodes": target})
                if response.ok:
                    accepted_targets[uuid] = target
            assert response.status_code < 500, response.text
            reads.append(api.call("GET", "/api/v1/nodecluster/?limit=10").status_code)
        assert set(reads) == {200}  # reads keep working while the broker is down
        assert accepted_targets or deleted
        redis.start()

        clusters = {cluster.uuid: cluster for cluster in settled_with_supervised_workers(uuids, engine, timeout=120)}
        for uuid in uuids:
            cluster = clusters[uuid_module.UUID(uuid)]
            if uuid in deleted:
                assert cluster.state == NodeClusterState.TERMINATED
                assert live_simulated(uuid) == []
            else:
                expected = accepted_targets.get(uuid, 1)
                assert cluster.target_num_nodes == expected
                assert len(deployed_instance_ids(uuid)) == expected
                assert live_simulated(uuid) == deployed_instance_ids(uuid)
    finally:
        redis.stop()


def _restart_postgres() -> None:
    version = sorted(Path("/etc/postgresql").iterdir())[0].name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        timeout=60,
        capture_output=True,
    )
    wait_until(
        lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0,
        timeout=30,
        what="PostgreSQL to accept connections again",
    )


def test_a_database_restart_during_a_scale_converges(user, start_engine):
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").exists():
        reason = "needs a Debian PostgreSQL cluster this test may restart"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI's machine has one: a skip there would hide a test that never runs
        pytest.skip(reason)
    engine = start_engine(env={**SIMULATED, "SIMULATED_BOOT_SECONDS": "2"})
    api = Api(engine.start_web(), user)
    uuid = api.create_cluster("restart", 10)
    wait_until(
        lambda: Node.objects.filter(node_cluster_id=uuid).exclude(instance_id="").exists(),
        timeout=60,
        what="the first instance",
        engine=engine,
    )
    connection.close()
    _restart_postgres()
    (cluster,) = wait_settled([uuid], engine, timeout=120)
    assert cluster.state == NodeClusterState.DEPLOYED
    assert len(deployed_instance_ids(uuid)) == 10
    assert live_simulated(uuid) == deployed_instance_ids(uuid)


def test_thirty_percent_failing_creates_at_the_provider_converge_and_leave_nothing_behind(
    user, start_engine, moto, moto_ami, ec2, settings
):
    with FaultyProxy(moto.url, failure_rate=0.3, seed=11) as proxy:
        engine = start_engine(
            env={
                "SIMULATE_PROVIDERS": "0",
                "SHARED_PROVIDER_ACCOUNTS": "aws",  # the operator's (moto) account: nobody links one here
                "AWS_ENDPOINT_URL": proxy.url,
                "AWS_DEFAULT_AMI": moto_ami,
                "ENGINE_LEAK_SWEEP_INTERVAL": "2",
            }
        )
        api = Api(engine.start_web(), user)
        uuid = api.create_cluster("flaky", 10, AWS_CLUSTER)
        (cluster,) = wait_settled([uuid], engine, timeout=150)
        assert proxy.refused + proxy.lost > 0, "the proxy should have injected failures"
        action = Action.objects.get(node_cluster_id=uuid, action="Node Cluster Deploy")
        deployed = deployed_instance_ids(uuid)
        if cluster.state == NodeClusterState.DEPLOYED:
            assert len(deployed) == 10
            assert action.state == ActionState.SUCCESS
        else:
            assert cluster.state == NodeClusterState.PARTLY_DEPLOYED
            assert action.state == ActionState.FAILED
            assert "Gave up" in action.logs
        assert "transient provider error" in action.logs or "deploy failed" in action.logs  # the reasons are logged
        # Instances whose answers were lost are twins or orphans: the leak sweep removes every one of them.
        wait_until(
            lambda: sorted(running_ec2(ec2)) == deployed, timeout=30, what="only deployed instances left", engine=engine
        )


def test_fifty_concurrent_scales_converge_to_the_last_accepted_target(user, start_engine):
    engine = start_engine(env=SIMULATED)
    api = Api(engine.start_web(), user)
    uuid = api.create_cluster("burst", 2)
    wait_settled([uuid], engine)
    rng = random.Random(3)
    targets = [rng.randint(0, 8) for _ in range(50)]
    statuses = []

    def scale(target):
        statuses.append(api.call("PATCH", f"/api/v1/nodecluster/{uuid}/", {"target_num_nodes": target}).status_code)

    threads = [threading.Thread(target=scale, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(statuses) <= {200, 202}, engine.logs()
    assert len(statuses) == 50
    last = Action.objects.filter(node_cluster_id=uuid, action="Node Cluster Scale").order_by("-start_date").first()
    (cluster,) = wait_settled([uuid], engine)
    assert cluster.target_num_nodes == last.target_num_nodes
    assert len(deployed_instance_ids(uuid)) == cluster.target_num_nodes
    assert live_simulated(uuid) == deployed_instance_ids(uuid)
    last.refresh_from_db()
    assert last.state == ActionState.SUCCESS
    open_actions = Action.objects.filter(
        node_cluster_id=uuid, state__in=[ActionState.PENDING, ActionState.IN_PROGRESS, ActionState.CANCELING]
    )
    assert not open_actions.exists()


def test_a_leaked_instance_and_a_twin_are_found_and_terminated(user, aws_engine, ec2, moto_ami):
    engine = aws_engine(env={"ENGINE_LEAK_SWEEP_INTERVAL": "2"})
    api = Api(engine.start_web(), user)
    uuid = api.create_cluster("leaky", 1, AWS_CLUSTER)
    wait_settled([uuid], engine)
    node = NodeCluster.objects.get(pk=uuid).nodes.get()

    def launch(node_uuid):
        tags = {OWNER_TAG: "tutum-api", NODE_UUID_TAG: node_uuid, CLUSTER_UUID_TAG: uuid}
        reservation = ec2.run_instances(
            ImageId=moto_ami,
            MinCount=1,
            MaxCount=1,
            InstanceType="t2.micro",
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
            ],
        )
        return reservation["Instances"][0]["InstanceId"]

    leaked = launch(str(uuid_module.uuid4()))  # tagged as ours, owned by no node
    twin = launch(str(node.uuid))  # a second instance for a live node
    foreign = ec2.run_instances(ImageId=moto_ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_until(
        lambda: sorted(running_ec2(ec2)) == [node.instance_id],
        timeout=30,
        what="the leak and the twin to be terminated",
        engine=engine,
    )
    states = {
        instance["InstanceId"]: instance["State"]["Name"]
        for reservation in ec2.describe_instances(InstanceIds=[leaked, twin, foreign])["Reservations"]
        for instance in reservation["Instances"]
    }
    assert states[leaked] in ("shutting-down", "terminated")
    assert states[twin] in ("shutting-down", "terminated")
    assert states[foreign] == "running"  # not ours: never touched
