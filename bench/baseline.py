"""The baseline list and detail: the rows of `GET /api/v1/nodecluster/` read with one hand-written SQL query.

They answer in the same Tutum shape (meta + objects, RFC 2822 dates, resource URIs) and authenticate with the same
API key check as the API, so `bench.api` can compare the real views against the cost of just reading and encoding
their rows. They are yardsticks, not endpoints: only `bench.urls` routes to them.
"""

import base64
import binascii
import json

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from nodeclusters.choices import NODE_UP_STATES
from nodeclusters.services import api_key_authenticate
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822

# The page is cut in the inner query (its window count is the total before LIMIT), so the per-cluster arrays and
# counts are computed for the page's rows only.
PAGE_SQL = """
WITH page AS (
    SELECT c.uuid, c.name, c.nickname, c.state, c.disk, c.target_num_nodes, c.tags::text AS tags,
           c.provider_options::text AS provider_options, c.deployed_datetime, c.destroyed_datetime,
           c.scale_in_policy, c.min_num_nodes, c.max_num_nodes, c.unhealthy_timeout, c.max_unhealthy_percent,
           c.max_repairs_per_hour, c.node_type_id, c.region_id, c.created_at, count(*) OVER () AS total_count
    FROM nodeclusters_nodecluster c
    WHERE c.owner_id = %(owner)s AND (%(uuid)s::uuid IS NULL OR c.uuid = %(uuid)s::uuid)
    ORDER BY c.created_at DESC, c.uuid
    LIMIT %(limit)s OFFSET %(offset)s
)
SELECT page.uuid, page.name, page.nickname, page.state, page.disk, page.target_num_nodes, page.tags,
       page.provider_options, page.deployed_datetime, page.destroyed_datetime,
       page.scale_in_policy, page.min_num_nodes, page.max_num_nodes, page.unhealthy_timeout,
       page.max_unhealthy_percent, page.max_repairs_per_hour,
       node_type.name, region.name, provider.name,
       ARRAY(SELECT node.uuid::text FROM nodeclusters_node node
             WHERE node.node_cluster_id = page.uuid ORDER BY node.created_at, node.uuid),
       ARRAY(SELECT action.uuid::text FROM nodeclusters_action action
             WHERE action.node_cluster_id = page.uuid ORDER BY action.start_date DESC, action.uuid),
       (SELECT count(*) FROM nodeclusters_node node
        WHERE node.node_cluster_id = page.uuid AND node.state = ANY(%(current_states)s)),
       page.total_count
FROM page
JOIN nodeclusters_nodetype node_type ON node_type.id = page.node_type_id
JOIN nodeclusters_region region ON region.id = page.region_id
JOIN nodeclusters_provider provider ON provider.id = region.provider_id
ORDER BY page.created_at DESC, page.uuid
"""
LIST_PATH = "/api/v1/nodecluster/"


def _authenticated_user_id(request) -> int | None:
    """The user id behind an `ApiKey user:key` or Basic header, checked by the API's own service."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            credentials = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    elif scheme.lower() != "apikey":
        return None
    username, _, raw_key = credentials.strip().partition(":")
    api_key = api_key_authenticate(username=username, raw_key=raw_key)
    return api_key.user_id if api_key is not None else None


def _page_link(limit: int, offset: int) -> str:
    return f"{LIST_PATH}?limit={limit}&offset={offset}"


def _int_param(request, name: str, default: int) -> int:
    try:
        return max(int(request.GET.get(name, default)), 0)
    except ValueError:
        return default


def _rows(*, owner_id: int, limit: int, offset: int, uuid: str | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            PAGE_SQL,
            {
                "owner": owner_id,
                "uuid": uuid,
                "limit": limit,
                "offset": offset,
                "current_states": [str(s) for s in NODE_UP_STATES],
            },
        )
        return cursor.fetchall()


def _representation(row: tuple) -> dict:
    (
        uuid,
        name,
        nickname,
        state,
        disk,
        target_num_nodes,
        tags,
        provider_options,
        deployed_datetime,
        destroyed_datetime,
        scale_in_policy,
        min_num_nodes,
        max_num_nodes,
        unhealthy_timeout,
        max_unhealthy_percent,
        max_repairs_per_hour,
        node_type_name,
        region_name,
        provider_name,
        node_uuids,
        action_uuids,
        current_num_nodes,
        _total,
    ) = row
    return {
        "uuid": str(uuid),
        "resource_uri": uris.nodecluster_uri(uuid),
        "name": name,
        "nickname": nickname,
        "state": state,
        "node_type": uris.nodetype_uri(provider_name, node_type_name),
        "region": uris.region_uri(provider_name, region_name),
        "disk": disk,
        "nodes": [uris.node_uri(node_uuid) for node_uuid in node_uuids],
        "actions": [uris.action_uri(action_uuid) for action_uuid in action_uuids],
        "target_num_nodes": target_num_nodes,
        "current_num_nodes": current_num_nodes,
        "deployed_datetime": format_rfc2822(deployed_datetime),
        "destroyed_datetime": format_rfc2822(destroyed_datetime),
        "tags": [{"name": tag} for tag in json.loads(tags)],
        "provider_options": json.loads(provider_options),
        "scale_in_policy": scale_in_policy,
        "min_num_nodes": min_num_nodes,
        "max_num_nodes": max_num_nodes,
        "unhealthy_timeout": unhealthy_timeout,
        "max_unhealthy_percent": max_unhealthy_percent,
        "max_repairs_per_hour": max_repairs_per_hour,
    }


def _unauthorized() -> JsonResponse:
    return JsonResponse({"error": "Invalid username or API key."}, status=401)


def baseline_node_cluster_list(request) -> JsonResponse:
    """`GET /bench/baseline/nodecluster/?limit=&offset=`: the real list page's body, from one query."""
    owner_id = _authenticated_user_id(request)
    if owner_id is None:
        return _unauthorized()
    limit = min(_int_param(request, "limit", 25) or 25, settings.API_MAX_PAGE_SIZE)
    offset = _int_param(request, "offset", 0)
    rows = _rows(owner_id=owner_id, limit=limit, offset=offset)
    # Past the last page there is no row to carry the window count; the benchmark only reads the first page.
    total_count = rows[0][-1] if rows else 0
    meta = {
        "limit": limit,
        "next": _page_link(limit, offset + limit) if offset + limit < total_count else None,
        "offset": offset,
        "previous": _page_link(limit, max(offset - limit, 0)) if offset > 0 else None,
        "total_count": total_count,
    }
    return JsonResponse({"meta": meta, "objects": [_representation(row) for row in rows]})


def baseline_node_cluster_detail(request, uuid) -> JsonResponse:
    """`GET /bench/baseline/nodecluster/<uuid>/`: the real detail body, from the same query cut to one row."""
    owner_id = _authenticated_user_id(request)
    if owner_id is None:
        return _unauthorized()
    rows = _rows(owner_id=owner_id, limit=1, offset=0, uuid=str(uuid))
    if not rows:
        return JsonResponse({"error": "Not found."}, status=404)
    return JsonResponse(_representation(rows[0]))
