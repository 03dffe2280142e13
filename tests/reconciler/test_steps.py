"""Per-node steps and reason codes, recorded by the engine as it works: an action's `steps` and `reason_code`, a
node's `failure_reason_code`, for deploys, provider refusals, timeouts, abandoned work, terminates and upgrades."""

from unittest import mock

import pytest

from nodeclusters import node_steps, reconciler, services
from nodeclusters.choices import ActionState, NodeState, ReasonCode
from nodeclusters.models import Action, ActionStep, Node
from providers.errors import QuotaExceeded
from providers.simulated import SimulatedDriver
from tests import factories

from .conftest import converge, run_round

pytestmark = pytest.mark.django_db
CONTEXT = factories.CONTEXT


def steps_of(client, action) -> list[dict]:
    return client.get(f"/api/v1/action/{action.uuid}/").json()["steps"]


def by_node(steps) -> dict:
    found = {}
    for step in steps:
        found.setdefault(step["node"], {})[step["step"]] = step
    return found


def test_a_deploy_records_a_create_and_a_boot_step_per_node(user, client):
    cluster = converge(factories.deploy(factories.make_cluster(user, target_num_nodes=2)).uuid)
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")

    body = client.get(f"/api/v1/action/{action.uuid}/").json()
    assert body["state"] == "Success" and body["reason_code"] is None
    steps = by_node(body["steps"])
    assert set(steps) == {f"/api/v1/node/{node.uuid}/" for node in cluster.nodes.all()}
    for node in cluster.nodes.all():
        node_steps_ = steps[f"/api/v1/node/{node.uuid}/"]
        assert set(node_steps_) == {"create", "boot"}
        assert node_steps_["create"]["message"] == f"instance {node.instance_id} created (running)"
        assert all(step["state"] == "Success" and step["reason_code"] is None for step in node_steps_.values())
        assert all(step["start_date"] and step["end_date"] for step in node_steps_.values())
    # Lists leave steps out (a page costs no query for them); the reason code is there.
    listed = client.get("/api/v1/action/", {"object": f"/api/v1/nodecluster/{cluster.uuid}/"}).json()["objects"]
    assert all("steps" not in item and "reason_code" in item for item in listed)


def test_a_boot_step_waits_pending_for_its_create_then_runs_until_the_node_is_up(user, client, settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    reconciler.reconcile_node_cluster(cluster.uuid)  # the node is planned; its deploy step has not run yet
    (planned,) = by_node(steps_of(client, action)).values()
    assert (planned["create"]["state"], planned["boot"]["state"]) == ("In progress", "Pending")
    assert planned["create"]["start_date"] and planned["boot"]["start_date"] is None

    node_steps.node_deploy_step(cluster.nodes.get().uuid)  # the instance exists and boots
    (booting,) = by_node(steps_of(client, action)).values()
    assert (booting["create"]["state"], booting["boot"]["state"]) == ("Success", "In progress")
    assert booting["boot"]["start_date"] == booting["create"]["end_date"] and booting["boot"]["end_date"] is None


def test_a_create_refused_for_quota_fails_the_node_and_the_action_with_quota_exceeded(user, client):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    refusal = QuotaExceeded("droplet limit of 2 reached; ask DigitalOcean for more")
    with mock.patch.object(SimulatedDriver, "create_node", side_effect=refusal):
        converge(cluster.uuid)

    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    assert action.state == ActionState.FAILED and action.reason_code == ReasonCode.QUOTA_EXCEEDED
    failed = list(cluster.nodes.exclude(failure_reason=""))
    assert failed and {node.failure_reason_code for node in failed} == {ReasonCode.QUOTA_EXCEEDED}
    node_body = client.get(f"/api/v1/node/{failed[0].uuid}/").json()
    assert node_body["failure_reason_code"] == "quota_exceeded"
    body = client.get(f"/api/v1/action/{action.uuid}/").json()
    assert body["reason_code"] == "quota_exceeded"
    for steps in by_node(body["steps"]).values():
        assert steps["create"]["state"] == "Failed" and steps["create"]["reason_code"] == "quota_exceeded"
        assert "droplet limit" in steps["create"]["message"]
        assert steps["terminate"]["state"] == "Success"  # the failed node cleaned up
        # The boot never started: it waited (Pending) for the create, and ends Canceled with the create's reason.
        assert (steps["boot"]["state"], steps["boot"]["reason_code"]) == ("Canceled", "quota_exceeded")
        assert steps["boot"]["message"].startswith("not started: ") and steps["boot"]["start_date"] is None


def test_an_instance_still_booting_at_the_deploy_timeout_fails_with_boot_timeout(user, client, settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    run_round(cluster.uuid)  # the instance exists and boots
    settings.ENGINE_DEPLOY_TIMEOUT = 0
    node_steps.region_poll_step(cluster.region_id)
    node = cluster.nodes.get()
    assert node.state == NodeState.TERMINATING and node.failure_reason_code == ReasonCode.BOOT_TIMEOUT
    steps = by_node(steps_of(client, Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")))
    node_steps_ = steps[f"/api/v1/node/{node.uuid}/"]
    assert node_steps_["create"]["state"] == "Success"
    assert (node_steps_["boot"]["state"], node_steps_["boot"]["reason_code"]) == ("Failed", "boot_timeout")
    assert node_steps_["terminate"]["state"] == "In progress" and node_steps_["terminate"]["end_date"] is None


def test_nodes_scaled_away_while_booting_are_superseded_and_canceled_ones_say_so(user, client, settings):
    settings.SIMULATED_BOOT_SECONDS = 3600
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=3))
    run_round(cluster.uuid)
    deploy_action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    services.node_cluster_update(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT, target_num_nodes=1)
    run_round(cluster.uuid)

    abandoned = list(cluster.nodes.filter(state=NodeState.TERMINATED))
    assert len(abandoned) == 2 and {node.failure_reason_code for node in abandoned} == {ReasonCode.SUPERSEDED}
    assert all(node.failure_reason == "" for node in abandoned)  # not failures: no budget spent on them
    deploy_steps = by_node(steps_of(client, deploy_action))
    for node in abandoned:
        boot = deploy_steps[f"/api/v1/node/{node.uuid}/"]["boot"]
        assert (boot["state"], boot["reason_code"]) == ("Canceled", "superseded")
    scale_action = Action.objects.get(node_cluster=cluster, action="Node Cluster Scale")
    scale_steps = by_node(steps_of(client, scale_action))
    assert {uri: set(steps) for uri, steps in scale_steps.items()} == {
        f"/api/v1/node/{node.uuid}/": {"terminate"} for node in abandoned
    }
    assert {steps["terminate"]["state"] for steps in scale_steps.values()} == {"Success"}

    services.node_cluster_update(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT, target_num_nodes=3)
    run_round(cluster.uuid)
    scale_up = Action.objects.get(node_cluster=cluster, action="Node Cluster Scale", state=ActionState.IN_PROGRESS)
    services.action_cancel(action_uuid=scale_up.uuid, owner=user, context=CONTEXT)
    run_round(cluster.uuid)
    # None had come up, so the cancel keeps none: every node still booting is canceled, the scale's two with it.
    canceled = Node.objects.filter(node_cluster=cluster, failure_reason_code=ReasonCode.CANCELED)
    assert canceled.count() == 3
    boots = ActionStep.objects.filter(action=scale_up, step="boot")
    assert boots.count() == 2 and set(boots.values_list("state", "reason_code")) == {("Canceled", "canceled")}


def test_a_node_terminate_and_a_docker_upgrade_record_their_steps(user, client):
    cluster = converge(factories.deploy(factories.make_cluster(user, target_num_nodes=2)).uuid)
    first, second = cluster.nodes.order_by("created_at")
    _, upgrade = services.node_cluster_docker_upgrade(node_cluster_uuid=cluster.uuid, owner=user, context=CONTEXT)
    converge(cluster.uuid)
    run_round(cluster.uuid)
    upgrade_steps = steps_of(client, upgrade)
    assert sorted((step["node"], step["step"], step["state"]) for step in upgrade_steps) == sorted(
        (f"/api/v1/node/{node.uuid}/", "upgrade", "Success") for node in (first, second)
    )
    assert all(step["message"] == "Docker upgraded to 1.9.1" for step in upgrade_steps)

    _, terminate = services.node_terminate(node_uuid=first.uuid, owner=user, context=CONTEXT)
    converge(cluster.uuid)
    (step,) = steps_of(client, terminate)
    assert (step["node"], step["step"], step["state"]) == (f"/api/v1/node/{first.uuid}/", "terminate", "Success")
    assert step["message"] == f"instance {first.instance_id} terminated"


def test_a_step_out_of_retries_fails_the_node_with_the_providers_code(user, catalog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    run_round(cluster.uuid)
    node = cluster.nodes.get()
    Node.objects.filter(pk=node.pk).update(state=NodeState.DEPLOYING, instance_id="")
    node_steps.node_give_up(node.uuid, "throttled (after 9 attempts)", ReasonCode.RATE_LIMITED)
    node.refresh_from_db()
    assert node.state == NodeState.TERMINATING and node.failure_reason_code == ReasonCode.RATE_LIMITED
