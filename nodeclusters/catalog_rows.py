"""The catalog rows a node step reads (its node type, region with provider, availability zone), kept per process.

A step loads its node with one query; joining the four catalog tables into it made PostgreSQL spend more time
planning that query than running it (1.5 to 4 ms a load in a fleet, once per step). The catalog is a few dozen rows
that change only when the catalog sync or an operator edits them, so a worker process keeps them and reads them again
every CATALOG_ROWS_SECONDS, or at once when it meets an id it does not know. A step reads names and sizes from them;
which types and regions are available is decided elsewhere (the API and the preflight read the database).
"""

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from .models import AvailabilityZone, Node, NodeType, Region


@dataclass(frozen=True)
class _Rows:
    node_types: dict = field(default_factory=dict)
    regions: dict = field(default_factory=dict)
    zones: dict = field(default_factory=dict)
    read_at: float = float("-inf")


_rows = _Rows()
_reading = threading.Lock()


def catalog_rows_forget() -> None:
    """Read the catalog again at the next step (after a sync in this process, and between tests)."""
    global _rows
    _rows = _Rows()


def _knows(rows: _Rows, node: Node) -> bool:
    return (
        node.node_type_id in rows.node_types
        and rows.node_types[node.node_type_id].alias_of_id in (None, *rows.node_types)
        and node.region_id in rows.regions
        and (node.availability_zone_id is None or node.availability_zone_id in rows.zones)
    )


def _current(node: Node) -> _Rows:
    rows = _rows
    if time.monotonic() - rows.read_at < settings.CATALOG_ROWS_SECONDS and _knows(rows, node):
        return rows
    rows = _read(since=rows.read_at)
    # Read by another thread just before a row this node refers to was written: read once more.
    return rows if _knows(rows, node) else _read(since=rows.read_at)


def _read(*, since: float) -> _Rows:
    global _rows
    with _reading:
        if _rows.read_at > since:  # another thread read them meanwhile
            return _rows
        read_at = time.monotonic()
        node_types = {row.pk: row for row in NodeType.objects.all()}
        for row in node_types.values():
            if row.alias_of_id in node_types:
                row.alias_of = node_types[row.alias_of_id]  # `provider_node_type` without a query
        _rows = _Rows(
            node_types=node_types,
            regions={row.pk: row for row in Region.objects.select_related("provider")},
            zones={row.pk: row for row in AvailabilityZone.objects.all()},
            read_at=read_at,
        )
        return _rows


def with_catalog_rows(node: Node) -> Node:
    """The node with its node type (and the type a legacy alias stands for), region (and provider) and zone set
    from the process's catalog rows."""
    rows = _current(node)
    node.node_type = rows.node_types[node.node_type_id]
    node.region = rows.regions[node.region_id]
    node.availability_zone = rows.zones[node.availability_zone_id] if node.availability_zone_id else None
    return node
