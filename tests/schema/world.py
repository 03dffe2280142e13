"""A realistic account for the schema tests: clusters in several states, nodes with and without zones, actions."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from nodeclusters import services
from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, AvailabilityZone, Node, NodeCluster, Webhook
from nodeclusters.services.accounts import cloud_account_link
from nodeclusters.services.actions import action_finish
from nodeclusters.services.webhooks import webhook_create, webhooks_fan_out
from tests import factories

CONTEXT = factories.CONTEXT


@dataclass(frozen=True)
class World:
    """Everything one user owns, each object chosen so some operation on it succeeds."""

    init: NodeCluster  # Init: deploy, PATCH (synchronous)
    deployed: NodeCluster  # Deployed, two nodes: scale (202), docker-upgrade, terminate
    aws: NodeCluster  # AWS, Deploying, provider_options, one node in us-east-1a and one still booting
    terminated: NodeCluster  # Terminated, destroyed_datetime set: every write is a 409
    node: Node  # Deployed node of `deployed`
    spare_node: Node  # second Deployed node of `deployed`
    zone_node: Node  # Deployed node of `aws` with an availability zone
    booting_node: Node  # Deploying node of `aws`: no IP, no dates (the nullable fields are null)
    dead_node: Node  # Terminated node of `terminated`
    loose_node: Node  # a node in no cluster (node_cluster is nullable)
    open_action: Action  # In progress and cancelable (the deploy of `aws`)
    finished_action: Action  # Success and retryable (the deploy of `deployed`)
    webhook: Webhook  # gets every event of the account: its deliveries are listed


def build_world(user) -> World:
    factories.ensure_catalog()
    now = timezone.now()
    webhook, _, _ = webhook_create(owner=user, url="https://hooks.example.com/tutum", types=[], context=CONTEXT)
    # A linked account at `local` (the simulated cloud), so its credentials can be read, replaced and unlinked.
    cloud_account_link(owner=user, provider_name="local", data={"token": "world-token"}, context=CONTEXT)

    deployed = factories.make_cluster(user, name="web", nickname="Web tier", target_num_nodes=2, tags=["web"])
    deployed, deploy_action = services.node_cluster_deploy(node_cluster_uuid=deployed.uuid, owner=user, context=CONTEXT)
    node = factories.make_node(deployed, nickname="web-1", last_metric={"cpu": 0.5})
    spare_node = factories.make_node(deployed, tunnel="https://tunnel.example.test:1234")
    action_finish(action=deploy_action, state=ActionState.SUCCESS, message="2 node(s) up")
    NodeCluster.objects.filter(pk=deployed.pk).update(state=NodeClusterState.DEPLOYED, deployed_datetime=now)

    aws = factories.make_cluster(
        user,
        provider="aws",
        region_name="us-east-1",
        type_name="t2.micro",
        name="aws",
        target_num_nodes=2,
        provider_options={"vpc": {"id": "vpc-0a1b", "subnets": ["subnet-1"]}},
    )
    aws, open_action = services.node_cluster_deploy(node_cluster_uuid=aws.uuid, owner=user, context=CONTEXT)
    zone = AvailabilityZone.objects.get(region=aws.region, name="us-east-1a")
    zone_node = factories.make_node(aws, availability_zone=zone, instance_id="i-0123456789abcdef0")
    booting_node = factories.make_node(aws, state=NodeState.DEPLOYING, external_fqdn="")

    terminated = factories.make_cluster(user, name="gone", target_num_nodes=1)
    dead_node = factories.make_node(
        terminated, state=NodeState.TERMINATED, deployed_datetime=now - timedelta(days=1), destroyed_datetime=now
    )
    NodeCluster.objects.filter(pk=terminated.pk).update(
        state=NodeClusterState.TERMINATED,
        target_num_nodes=0,
        deployed_datetime=now - timedelta(days=1),
        destroyed_datetime=now,
    )

    loose_node = factories.make_node(deployed, node_cluster=None, nickname="byon")
    # The newest, so first in the list: the stateful fuzz's links from the list page reach a cluster it can deploy.
    init = factories.make_cluster(user, name="init", tags=["staging"])
    webhooks_fan_out()

    return World(
        init=NodeCluster.objects.get(pk=init.pk),
        deployed=NodeCluster.objects.get(pk=deployed.pk),
        aws=NodeCluster.objects.get(pk=aws.pk),
        terminated=NodeCluster.objects.get(pk=terminated.pk),
        node=node,
        spare_node=spare_node,
        zone_node=zone_node,
        booting_node=booting_node,
        dead_node=dead_node,
        loose_node=loose_node,
        open_action=Action.objects.get(pk=open_action.pk),
        finished_action=Action.objects.get(pk=deploy_action.pk),
        webhook=webhook,
    )
