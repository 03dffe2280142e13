"""Prometheus metrics at /metrics: HTTP traffic, clusters and nodes by state, engine runs, provider calls, backlog.

Web and worker processes write to one multiprocess directory (PROMETHEUS_MULTIPROC_DIR, set in settings before
prometheus_client is imported), so one scrape of any web process sees the whole deployment on that host. Clusters
and nodes by state are counted by a beat task (`state_gauges_update`), not per scrape: a scrape costs no query.
"""

import hmac
import os
import time

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

HTTP_REQUESTS = Counter("tutum_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_LATENCY = Histogram("tutum_http_request_duration_seconds", "HTTP request latency", ["method", "route"])
RECONCILE_RUNS = Counter("tutum_reconcile_runs_total", "Node cluster reconciles", ["outcome"])
RECONCILE_DURATION = Histogram("tutum_reconcile_duration_seconds", "Duration of one node cluster reconcile")
# Provider call metrics live beside the drivers: providers.instrumentation.


class MetricsMiddleware:
    """Counts and times every request, labelled by the URL pattern's name rather than the raw path."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.url_name or match.route or "unnamed") if match else "unmatched"
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


# Written by whichever worker ran the beat task last: "mostrecent" makes a scrape report that process's values,
# also once it has exited, instead of adding up every process that ever wrote them.
NODE_CLUSTERS = Gauge("tutum_node_clusters", "Node clusters by state", ["state"], multiprocess_mode="mostrecent")
NODES = Gauge("tutum_nodes", "Nodes by state", ["state"], multiprocess_mode="mostrecent")
STATE_GAUGES_UPDATED = Gauge(
    "tutum_state_gauges_updated_timestamp_seconds",
    "When tutum_node_clusters and tutum_nodes were last counted (beat stopped if this falls behind)",
    multiprocess_mode="mostrecent",
)


def state_gauges_update() -> dict[str, dict[str, int]]:
    """Count node clusters and nodes by state into their gauges (every state, zeros included, so none goes stale)."""
    from nodeclusters.choices import NodeClusterState, NodeState
    from nodeclusters.models import Node, NodeCluster

    counts = {}
    for name, gauge, model, states in (
        ("node_clusters", NODE_CLUSTERS, NodeCluster, NodeClusterState),
        ("nodes", NODES, Node, NodeState),
    ):
        found = dict(model.objects.order_by().values_list("state").annotate(count=Count("pk")))
        counts[name] = {state.value: found.get(state.value, 0) for state in states}
        for state, count in counts[name].items():
            gauge.labels(state).set(count)
    STATE_GAUGES_UPDATED.set(time.time())
    return counts


class BacklogCollector:
    """The queue backlog, asked of the broker at scrape time (a task would wait in the very queue it measures)."""

    def collect(self):
        backlog = GaugeMetricFamily("tutum_queue_backlog", "Messages waiting in the task queue", labels=["queue"])
        waiting = queue_backlog()
        if waiting is not None:
            backlog.add_metric(["celery"], waiting)
        yield backlog


def queue_backlog(queue: str = "celery") -> int | None:
    """Messages waiting in the broker queue, or None if the broker does not answer."""
    from tutum_api.celery import app

    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:  # the backlog is informative; a broker outage is reported by /readyz
        return None


def _authorized(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of the token was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def metrics_view(request):
    """The Prometheus text format for every process on this host; `Authorization: Bearer` when METRICS_TOKEN is set."""
    if not _authorized(request):
        response = JsonResponse({"error": "Send 'Authorization: Bearer <METRICS_TOKEN>' to read /metrics."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    registry.register(BacklogCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
