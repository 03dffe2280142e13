"""Test data, made with the real services wherever a service exists (nodes are the engine's, so rows here)."""

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from nodeclusters import services
from nodeclusters.catalog import catalog_load
from nodeclusters.choices import NodeState
from nodeclusters.models import AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region

CONTEXT = services.RequestContext(method="TEST", path="/tests/", user_agent="pytest")


def ensure_catalog() -> None:
    if not Provider.objects.exists():
        catalog_load(Provider, Region, AvailabilityZone, NodeType)


def make_user(username: str = "alice", **extra):
    user_model = get_user_model()
    return user_model.objects.get_or_create(username=username, defaults=extra)[0]


def make_api_key(user) -> str:
    return services.api_key_create(user=user)[1]


def api_client(user, raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"ApiKey {user.username}:{raw_key}")
    return client


def region(provider: str = "digitalocean", name: str = "lon1") -> Region:
    return Region.objects.select_related("provider").get(provider__name=provider, name=name)


def node_type(provider: str = "digitalocean", name: str = "1gb") -> NodeType:
    return NodeType.objects.select_related("provider").get(provider__name=provider, name=name)


def make_cluster(
    owner, *, provider: str = "digitalocean", region_name: str = "lon1", type_name: str = "1gb", **options
) -> NodeCluster:
    """A cluster in `Init`, created through the service like the API does."""
    ensure_catalog()
    options.setdefault("name", "test-cluster")
    cluster, _ = services.node_cluster_create(
        owner=owner,
        node_type=node_type(provider, type_name),
        region=region(provider, region_name),
        context=CONTEXT,
        **options,
    )
    return cluster


def deploy(cluster: NodeCluster) -> NodeCluster:
    cluster, _ = services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=cluster.owner, context=CONTEXT)
    return cluster


def make_node(cluster: NodeCluster, *, state: str = NodeState.DEPLOYED, **fields) -> Node:
    """A node row as the engine would have left it in `state`."""
    now = timezone.now()
    defaults = {
        "owner_id": cluster.owner_id,
        "node_cluster": cluster,
        "node_type": cluster.node_type,
        "region": cluster.region,
        "state": state,
        "tags": list(cluster.tags),
        "disk": cluster.disk,
        "external_fqdn": "node.example.test",
    }
    if state in (NodeState.DEPLOYED, NodeState.UNREACHABLE, NodeState.UPGRADING):
        defaults.update(deployed_datetime=now, last_seen=now, public_ip="198.18.0.10", docker_version="1.9.1")
    defaults.update(fields)
    return Node.objects.create(**defaults)
