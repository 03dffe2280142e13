"""Reads: the querysets the API and the admin list, shaped so a page costs a constant number of queries."""

import functools
import json

from django.db.models import CharField, F, Field, Func, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Cast

from .choices import ACTION_OPEN_STATES, NODE_UP_STATES
from .models import (
    Action,
    ActionLogLine,
    ActionStep,
    AvailabilityZone,
    Event,
    Node,
    NodeCluster,
    NodeType,
    Provider,
    Region,
)


class _UuidListField(Field):
    """What a `UuidList` column reads as: a list of hyphenated uuid strings."""

    def from_db_value(self, value, expression, connection) -> list[str]:
        if isinstance(value, str):  # SQLite: a JSON array of 32-digit uuids
            return [_canonical_uuid(item) for item in json.loads(value)]
        return value or []  # PostgreSQL: already a list of hyphenated uuids


class UuidList(Subquery):
    """The uuids a one-column subquery selects, in its order, as one column of the outer row.

    `ARRAY(...)` on PostgreSQL, a JSON array on SQLite: a page's node and action references come with its rows
    instead of in queries (and Python grouping) of their own.
    """

    output_field = _UuidListField()

    def __init__(self, queryset, **extra) -> None:
        super().__init__(queryset.annotate(reference=Cast("uuid", CharField())).values_list("reference"), **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="ARRAY(%(subquery)s)", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # A subquery with ORDER BY under an aggregate is not flattened, so the array keeps its order.
        return self.as_sql(
            compiler, connection, template="(SELECT json_group_array(reference) FROM (%(subquery)s))", **extra_context
        )


def node_cluster_list(*, owner) -> QuerySet[dict]:
    """The owner's clusters as the API renders them, newest first: a page of them is one query.

    Rows, not model instances: each carries its catalog names, its current node count and its node and action
    uuids, and four model instances per row (cluster, node type, region, provider) would cost more than the rest
    of the page.
    """
    return _node_cluster_rows().filter(owner=owner)


@functools.cache
def _node_cluster_rows() -> QuerySet[dict]:
    # Built once per process: assembling these expressions costs about as much as running the query. Every use
    # filters (and so clones) it; it is never evaluated itself.

    # COUNT as a plain function: no GROUP BY, and 0 (not NULL) for a cluster without nodes.
    current_nodes = (
        Node.objects.filter(node_cluster=OuterRef("pk"), state__in=NODE_UP_STATES)
        .order_by()
        .annotate(count=Func(F("pk"), function="COUNT"))
        .values("count")
    )
    return (
        NodeCluster.objects.values(*NODE_CLUSTER_ROW_FIELDS)
        # Correlated per row of the page, computed after the LIMIT, not joins of every node of the owner.
        .annotate(
            node_type_name=F("node_type__name"),
            region_name=F("region__name"),
            # The node type's provider is the region's: one name renders both URIs.
            provider_name=F("region__provider__name"),
            current_num_nodes=Subquery(current_nodes, output_field=IntegerField()),
            node_uuids=UuidList(Node.objects.filter(node_cluster=OuterRef("pk")).order_by("created_at", "uuid")),
            action_uuids=UuidList(Action.objects.filter(node_cluster=OuterRef("pk")).order_by("-start_date", "uuid")),
        )
        .order_by("-created_at", "uuid")
    )


NODE_CLUSTER_ROW_FIELDS = (
    "uuid",
    "name",
    "nickname",
    "state",
    "disk",
    "target_num_nodes",
    "deployed_datetime",
    "destroyed_datetime",
    "tags",
    "provider_options",
    *NodeCluster.CONTROL_FIELDS,
)


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
    """The owner's actions, newest first (their log lines are read on their own: `action_log_lines`)."""
    return Action.objects.filter(owner=owner)


def action_steps(*, action: Action) -> list[ActionStep]:
    """The action's per-node steps, oldest first, in one query (prefetched ones if the caller prefetched `steps`).
    A step renders its node's URI from `node_id`, so no node row is read."""
    prefetched = getattr(action, "_prefetched_objects_cache", {}).get("steps")
    if prefetched is not None:
        return list(prefetched)
    return list(
        ActionStep.objects.filter(action=action)
        .only("node_id", "step", "state", "reason_code", "message", "start_date", "end_date")
        .order_by("id")
    )


def action_log_lines(*, action: Action, tail: int | None = None) -> list[ActionLogLine]:
    """The action's log lines, oldest first; with `tail`, only the last `tail` of them."""
    lines = ActionLogLine.objects.filter(action=action).only("created_at", "message")
    if tail is None:
        return list(lines.order_by("id"))
    return list(reversed(lines.order_by("-id")[:tail]))


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
    # alias_of: a legacy name renders the type it stands for.
    return NodeType.objects.select_related("provider", "alias_of").prefetch_related(
        Prefetch("regions", queryset=Region.objects.only("name", "provider_id").order_by("name")),
        Prefetch("availability_zones", queryset=AvailabilityZone.objects.select_related("region")),
    )


# --- the Stream API's reads --------------------------------------------------------------------------------------

EVENT_FIELDS = (
    "sequence",
    "owner_id",
    "type",
    "action",
    "object_uuid",
    "resource_uri",
    "state",
    "parents",
    "created_at",
)


def events_after(*, owner_id: int, after: int, limit: int) -> list[dict]:
    """The owner's sequenced events after cursor `after`, oldest first (a resuming client's history)."""
    return list(
        Event.objects.filter(owner_id=owner_id, sequence__gt=after).order_by("sequence").values(*EVENT_FIELDS)[:limit]
    )


def action_log_tail(*, owner_id: int, action_uuid, tail: int) -> tuple[bool, list[ActionLogLine]] | None:
    """Whether the owner's action is still open, and its last `tail` log lines (oldest first); None if not theirs."""
    state = Action.objects.filter(uuid=action_uuid, owner_id=owner_id).values_list("state", flat=True).first()
    if state is None:
        return None
    lines = list(ActionLogLine.objects.filter(action_id=action_uuid).order_by("-id")[:tail]) if tail else []
    lines.reverse()
    return state in ACTION_OPEN_STATES, lines


def action_is_open(*, action_uuid) -> bool:
    return Action.objects.filter(uuid=action_uuid, state__in=ACTION_OPEN_STATES).exists()
