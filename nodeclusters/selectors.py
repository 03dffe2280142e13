"""Reads: the querysets the API and the admin list, shaped so a page costs a constant number of queries."""

from collections import defaultdict

from django.db.models import CharField, Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Cast, Coalesce

from .choices import NODE_UP_STATES
from .models import Action, AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region


def node_cluster_list(*, owner) -> QuerySet[NodeCluster]:
    """The owner's clusters, newest first; with `node_cluster_attach_references` a page costs four queries."""
    current_nodes = (
        Node.objects.filter(node_cluster=OuterRef("pk"), state__in=NODE_UP_STATES)
        .order_by()
        .values("node_cluster")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        NodeCluster.objects.filter(owner=owner)
        # node_type and region render as URIs that name the region's provider (the node type's is the same).
        .select_related("node_type", "region__provider")
        # A correlated count per row of the page, not a join of every node of the owner grouped before the LIMIT.
        .annotate(current_num_nodes=Coalesce(Subquery(current_nodes), 0))
        .order_by("-created_at", "uuid")
    )


def node_cluster_attach_references(clusters: list[NodeCluster]) -> None:
    """Give each cluster the uuids of its nodes and actions, in two queries for the whole page.

    Plain text (cluster id, uuid) rows: the representation needs nothing else, and model instances (or even
    UUID objects) for a page's hundreds of nodes and actions would cost more than the rest of the page.
    """
    node_uuids, action_uuids = defaultdict(list), defaultdict(list)
    ids = [cluster.pk for cluster in clusters]
    if ids:
        for model, ordering, found in (
            (Node, ("created_at", "uuid"), node_uuids),
            (Action, ("-start_date", "uuid"), action_uuids),
        ):
            rows = (
                model.objects.filter(node_cluster_id__in=ids)
                .order_by(*ordering)
                .values_list(Cast("node_cluster_id", CharField()), Cast("uuid", CharField()))
            )
            for cluster_id, uuid in rows:
                found[_canonical_uuid(cluster_id)].append(_canonical_uuid(uuid))
    for cluster in clusters:
        cluster.node_uuids = node_uuids[str(cluster.pk)]
        cluster.action_uuids = action_uuids[str(cluster.pk)]


def _canonical_uuid(text: str) -> str:
    """PostgreSQL casts a uuid to its hyphenated form; SQLite stores 32 hex digits."""
    if len(text) == 36:
        return text
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def node_list(*, owner) -> QuerySet[Node]:
    """The owner's nodes; every reference they render is joined in."""
    return Node.objects.filter(owner=owner).select_related(
        "node_type__provider", "region__provider", "availability_zone__region__provider"
    )


def action_list(*, owner) -> QuerySet[Action]:
    """The owner's actions, newest first, with their log lines (one query for the page)."""
    return Action.objects.filter(owner=owner).prefetch_related("log_lines")


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
