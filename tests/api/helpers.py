"""Small assertions and shortcuts shared by the API tests: URLs, error bodies, dates, engine hand-offs."""

import re
from functools import partial

from nodeclusters.models import Action, NodeCluster
from nodeclusters.services.actions import _enqueue, _enqueue_many

RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} \+0000$"
)
ACTION_HEADER = "X-Tutum-Action-URI"
RECONCILE_TASK = "nodeclusters.reconcile_node_cluster"


def cluster_url(cluster, suffix: str = "") -> str:
    return f"/api/v1/nodecluster/{cluster.uuid}/{suffix}"


def node_url(node, suffix: str = "") -> str:
    return f"/api/v1/node/{node.uuid}/{suffix}"


def action_url(action, suffix: str = "") -> str:
    return f"/api/v1/action/{action.uuid}/{suffix}"


def assert_error(response, status_code: int) -> dict:
    """A Tutum error: the status, a JSON body and a non-empty `error` string. Returns the body."""
    assert response.status_code == status_code, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    return body


def assert_rfc2822_or_none(value) -> None:
    assert value is None or RFC2822.match(value), value


def header_action(response) -> Action:
    """The Action row named by the response's `X-Tutum-Action-URI` header."""
    uri = response[ACTION_HEADER]
    match = re.fullmatch(r"/api/v1/action/([0-9a-f-]{36})/", uri)
    assert match, uri
    return Action.objects.get(uuid=match.group(1))


def hand_offs(callbacks) -> list[tuple[str, list[str]]]:
    """The engine hand-offs among on_commit callbacks, as (task name, args)."""
    found = []
    for callback in callbacks:
        assert isinstance(callback, partial), callback
        assert callback.func in (_enqueue, _enqueue_many), callback
        found += [(callback.args[0], callback.args[1])] if callback.func is _enqueue else callback.args[0]
    return found


def set_cluster_state(cluster: NodeCluster, state: str, **fields) -> NodeCluster:
    """Put a cluster row in a state as the engine would have (states are the engine's to set)."""
    NodeCluster.objects.filter(pk=cluster.pk).update(state=state, **fields)
    cluster.refresh_from_db()
    return cluster


def cluster_snapshot(cluster: NodeCluster) -> dict:
    """Everything about a cluster row a refused request must not change, plus its action count."""
    row = NodeCluster.objects.values().get(pk=cluster.pk)
    row["action_count"] = Action.objects.filter(node_cluster_id=cluster.pk).count()
    row["nodes"] = sorted(cluster.nodes.values_list("uuid", "state", "tags"))
    return row
