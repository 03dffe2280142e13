"""Reads: the querysets the API and the admin list, shaped so a page costs a constant number of queries."""

from django.db.models import Count, Prefetch, Q, QuerySet

from .choices import NodeState
from .models import Action, AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region

#: Nodes that count towards `current_num_nodes`: up, whether or not Docker answers right now.
CURRENT_NODE_STATES = (NodeState.DEPLOYED, NodeState.UNREACHABLE, NodeState.UPGRADING)


def node_cluster_list(*, owner) -> QuerySet[NodeCluster]:
    """The owner's clusters with everything their representation needs, in four queries per page."""
    return (
        NodeCluster.objects.filter(owner=owner)
        # node_type and region render as URIs that name their provider.
        .select_related("node_type__provider", "region__provider")
        # `nodes` and `actions` render as URI lists: fetch only the keys, one query each for the whole page.
        .prefetch_related(
            Prefetch("nodes", queryset=Node.objects.only("uuid", "node_cluster_id").order_by("created_at", "uuid")),
            Prefetch(
                "actions", queryset=Action.objects.only("uuid", "node_cluster_id").order_by("-start_date", "uuid")
            ),
        )
        .annotate(current_num_nodes=Count("nodes", filter=Q(nodes__state__in=CURRENT_NODE_STATES)))
        # Django drops Meta.ordering on aggregated querysets: pages must still be newest first and stable.
        .order_by("-created_at", "uuid")
    )


def node_list(*, owner) -> QuerySet[Node]:
    """The owner's nodes; every reference they render is joined in."""
    return Node.objects.filter(owner=owner).select_related(
        "node_type__provider", "region__provider", "availability_zone__region__provider"
    )


def action_list(*, owner) -> QuerySet[Action]:
    """The owner's actions, newest first."""
    return Action.objects.filter(owner=owner)


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.prefetch_related(Prefetch("regions", queryset=Region.objects.only("name", "provider_id")))


def region_list() -> QuerySet[Region]:
    return Region.objects.select_related("provider").prefetch_related(
        Prefetch(
            "node_types", queryset=NodeType.objects.only("name", "provider_id", "memory").order_by("memory", "name")
        ),
        Prefetch("availability_zones", queryset=AvailabilityZone.objects.only("name", "region_id")),
    )


def availability_zone_list() -> QuerySet[AvailabilityZone]:
    return AvailabilityZone.objects.select_related("region__provider")


def node_type_list() -> QuerySet[NodeType]:
    return NodeType.objects.select_related("provider").prefetch_related(
        Prefetch("regions", queryset=Region.objects.only("name", "provider_id").order_by("name")),
        Prefetch("availability_zones", queryset=AvailabilityZone.objects.select_related("region")),
    )
