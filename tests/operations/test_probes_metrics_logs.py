"""What operators watch: health probes, Prometheus metrics and structured logs."""

import json
import logging
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from kombu import Connection

from nodeclusters import node_steps, reconciler, tasks
from tests import factories
from tutum_api.celery import app as celery_app
from tutum_api.logging import ContextFilter, log_context

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_credentials():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_the_broker():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_an_unreachable_broker():
    # A kombu Connection of its own: the app's would keep the embedded broker's transport whatever the URL says.
    unreachable = Connection("redis://127.0.0.1:1/0")
    with mock.patch.object(celery_app, "connection_for_write", return_value=unreachable):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "broker unreachable", "checks": {"broker": "unreachable"}}


def test_readyz_names_an_unreachable_database():
    with mock.patch("tutum_api.health.connection.cursor", side_effect=OperationalError("connection refused")):
        response = Client().get("/readyz")
    assert response.status_code == 503
    # The reason is logged, not answered: tests/operations/test_safe_defaults.py.
    assert response.json()["checks"] == {"database": "unreachable"}


def _metric(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_states_reconciles_and_provider_calls(client, user, settings):
    settings.METRICS_TOKEN = ""
    settings.SIMULATE_PROVIDERS = True
    settings.SIMULATED_BOOT_SECONDS = 0
    before = Client().get("/metrics").content.decode()
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    client.get("/api/v1/nodecluster/")
    tasks.reconcile_node_cluster(str(cluster.uuid))  # the task body, run in-process
    for node in cluster.nodes.all():
        node_steps.node_deploy_step(node.uuid)
    reconciler.reconcile_node_cluster(cluster.uuid)
    tasks.update_state_gauges()  # what beat runs every METRICS_STATE_INTERVAL; scrapes only read its results

    response = Client().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    route = {"method": "GET", "route": "nodecluster-list", "status": "200"}
    assert (
        _metric(text, "tutum_http_requests_total", **route) == _metric(before, "tutum_http_requests_total", **route) + 1
    )
    assert _metric(text, "tutum_node_clusters", state="Deployed") == 1
    assert _metric(text, "tutum_nodes", state="Deployed") == 2
    assert _metric(text, "tutum_reconcile_runs_total", outcome="Deploying") >= 1
    calls = {"provider": "digitalocean", "operation": "create_node"}
    assert (
        _metric(text, "tutum_provider_calls_total", **calls)
        == _metric(before, "tutum_provider_calls_total", **calls) + 2
    )
    assert "tutum_queue_backlog" in text
    assert "tutum_provider_call_duration_seconds_bucket" in text


def _json_formatter() -> logging.Formatter:
    for handler in logging.getLogger().handlers:
        if any(isinstance(f, ContextFilter) for f in handler.filters):
            return handler.formatter
    raise AssertionError("the console handler with the context filter is not configured")


def test_engine_log_lines_are_json_with_the_cluster_node_and_action(user, caplog):
    cluster = factories.deploy(factories.make_cluster(user))
    reconciler.reconcile_node_cluster(cluster.uuid)
    node = cluster.nodes.get()
    cluster.refresh_from_db()
    context_filter = ContextFilter()
    with (
        caplog.at_level(logging.INFO, logger="nodeclusters"),
        log_context(node_cluster_uuid=cluster.uuid, node_uuid=node.uuid, action_uuid=cluster.current_action_id),
    ):
        node_steps.node_log(node, "a step")
    record = next(record for record in caplog.records if "a step" in record.getMessage())
    context_filter.filter(record)
    line = json.loads(_json_formatter().format(record))
    assert line["message"] == f"Node {node.uuid}: a step"
    assert line["level"] == "INFO"
    assert line["node_cluster_uuid"] == str(cluster.uuid)
    assert line["node_uuid"] == str(node.uuid)
    assert line["action_uuid"] == str(cluster.current_action_id)


def test_a_node_step_logs_its_cluster_and_action_and_leaves_no_ids_to_the_next_task(user, caplog):
    cluster = factories.deploy(factories.make_cluster(user))
    reconciler.reconcile_node_cluster(cluster.uuid)
    node = cluster.nodes.get()
    cluster.refresh_from_db()
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO):
        tasks.deploy_node(str(node.uuid))  # in-process, as a worker thread runs it
        logging.getLogger("nodeclusters.tasks").info("the thread's next piece of work")
    step = next(record for record in caplog.records if "creating a 1gb instance" in record.getMessage())
    assert (step.node_uuid, step.node_cluster_uuid) == (str(node.uuid), str(cluster.uuid))
    assert step.action_uuid == str(cluster.current_action_id)
    after = next(record for record in caplog.records if record.getMessage() == "the thread's next piece of work")
    assert not any(hasattr(after, name) for name in ("node_uuid", "node_cluster_uuid", "action_uuid"))


def test_a_reconcile_logs_its_cluster_and_current_action(user, caplog):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=2))
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO):
        tasks.reconcile_node_cluster(str(cluster.uuid))  # in-process, as a worker thread runs it
    cluster.refresh_from_db()
    record = next(record for record in caplog.records if record.getMessage().startswith("reconciled:"))
    assert (record.node_cluster_uuid, record.action_uuid) == (str(cluster.uuid), str(cluster.current_action_id))
