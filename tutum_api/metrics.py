"""Prometheus metrics at /metrics: HTTP traffic, clusters and nodes by state, engine runs, provider calls, backlog.

Web and worker processes write to one multiprocess directory (PROMETHEUS_MULTIPROC_DIR, set in settings before
prometheus_client is imported), so one scrape of any web process sees the whole deployment on that host.
"""

import os
import time

from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
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


class StateCollector:
    """Gauges read from the database at scrape time: clusters and nodes by state, and the queue backlog."""

    def collect(self):
        from nodeclusters.models import Node, NodeCluster

        clusters = GaugeMetricFamily("tutum_node_clusters", "Node clusters by state", labels=["state"])
        for row in NodeCluster.objects.values("state").annotate(count=Count("pk")):
            clusters.add_metric([row["state"]], row["count"])
        yield clusters
        nodes = GaugeMetricFamily("tutum_nodes", "Nodes by state", labels=["state"])
        for row in Node.objects.values("state").annotate(count=Count("pk")):
            nodes.add_metric([row["state"]], row["count"])
        yield nodes
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


def metrics_view(request):
    """The Prometheus text format for every process on this host plus the database-derived gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
