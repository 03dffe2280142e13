"""The console shows the engine's work, not Celery's chatter about the housekeeping beat runs every few seconds:
beat's "Sending due task", the worker's "received" and "succeeded" lines of the tasks in LOG_ROUTINE_TASKS are left
out (they were a third of an idle `make run`'s lines), while their failures and every other task's lines stay."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
from unittest import mock

import celery.app.trace
import celery.beat
import pytest
from celery.beat import ScheduleEntry
from django.conf import settings

from bench.soak import StackClient, wait_converged
from bench.support import ROOT
from nodeclusters import tasks
from nodeclusters.choices import NodeClusterState
from nodeclusters.models import NodeCluster
from tests import factories
from tests.support.stack import RunStack, wait_for_output


class Captured(logging.Handler):
    """The console handler as settings.LOGGING builds it, keeping the records it would write."""

    def __init__(self, settings) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        configurator = logging.config.DictConfigurator(settings.LOGGING)
        for name in settings.LOGGING["handlers"]["console"]["filters"]:
            self.addFilter(configurator.configure_filter(dict(settings.LOGGING["filters"][name])))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def console(settings):
    handler = Captured(settings)
    loggers = [logging.getLogger(name) for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")]
    loggers.append(logging.getLogger(tasks.__name__))
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def _a_run_of(task: str) -> None:
    """What beat and a worker log, at INFO, for one run of `task`, through Celery's own logging calls."""
    entry = ScheduleEntry(name=task.rsplit(".", 1)[-1].replace("_", "-"), task=task, schedule=2.0)
    celery.beat.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
    context = {"id": "4a1c", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(celery.app.trace.LOG_RECEIVED, context, extra={"data": context})
    done = {**context, "return_value": "{}", "runtime": 0.005}
    celery.app.trace.info(celery.app.trace.LOG_SUCCESS, done)


def test_celerys_lines_about_the_routine_tasks_are_left_out_and_the_engines_kept(console):
    _a_run_of("nodeclusters.webhooks_dispatch")
    _a_run_of("nodeclusters.engine_sweep")
    _a_run_of("nodeclusters.reconcile_node_cluster")
    assert [line for line in console.lines if "webhooks" in line or "sweep" in line] == []
    assert console.lines == [
        "Scheduler: Sending due task reconcile-node-cluster (nodeclusters.reconcile_node_cluster)",
        "Task nodeclusters.reconcile_node_cluster[4a1c] received",
        "Task nodeclusters.reconcile_node_cluster[4a1c] succeeded in 0.005s: {}",
    ]


def test_a_routine_tasks_failure_still_shows(console):
    context = {"id": "9f0e", "name": "nodeclusters.webhooks_dispatch", "exc": "OperationalError('gone')"}
    logging.getLogger("celery.app.trace").error(
        "Task %(name)s[%(id)s] raised unexpected: %(exc)s", context, extra={"data": context}
    )
    assert console.lines == ["Task nodeclusters.webhooks_dispatch[9f0e] raised unexpected: OperationalError('gone')"]


@pytest.mark.django_db
def test_the_routine_tasks_say_what_they_did_and_nothing_when_idle(console, user):
    with mock.patch.object(tasks.reconcile_node_cluster, "delay") as reconcile:
        tasks.engine_sweep()
        tasks.webhooks_dispatch()
        assert console.lines == []  # nothing to do: nothing written
        cluster = factories.make_cluster(user)
        NodeCluster.objects.filter(pk=cluster.pk).update(state=NodeClusterState.DEPLOYING)  # its message was lost
        tasks.engine_sweep()
    reconcile.assert_called_once_with(str(cluster.uuid))
    assert console.lines == ["sweep: queued 1 reconcile(s), 0 health check(s), 0 stray check(s), 0 repair(s)"]


def test_log_level_debug_shows_everything():
    """An operator chasing a scheduling problem sees every line again with LOG_LEVEL=DEBUG."""
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps([settings.LOGGING['handlers']['console']['filters'], settings.LOGGING['root']['level']]))"
    )
    env = {**os.environ, "LOG_LEVEL": "debug", "DJANGO_SETTINGS_MODULE": "tutum_api.settings", "TUTUM_EMBEDDED": "1"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [["context"], "DEBUG"]


@pytest.mark.stack
def test_make_runs_console_shows_the_engines_work_without_the_routine_runs(tmp_path):
    """Real beat and workers under runstack: both sweeps, the gauges and the webhook dispatch run every 2 s here, and
    Celery writes no line about any of them, while it does about a cluster's deploy."""
    intervals = ["ENGINE_SWEEP_INTERVAL", "ENGINE_HEALTH_CHECK_INTERVAL", "ENGINE_LEAK_SWEEP_INTERVAL"]
    env = dict.fromkeys([*intervals, "WEBHOOK_POLL_INTERVAL", "METRICS_STATE_INTERVAL"], "2")
    with RunStack(var_dir=tmp_path / "stack", env=env) as stack:
        client = StackClient(stack.url, stack.auth_header)
        try:
            uuid = client.create_cluster("quiet", 1)
            assert wait_converged(client, stack.var_dir, live=[uuid], terminated=[], timeout=60) == []
        finally:
            client.close()
        # Several runs of each routine task after the deploy: the sweep's health probes of the new node among them.
        wait_for_output(stack, r"sweep: queued 0 reconcile\(s\), 1 health check\(s\)", timeout=30)
        wait_for_output(stack, r"Task nodeclusters\.check_node_health\[[^]]+\] succeeded", timeout=30)
    console = stack.output()
    assert "Task nodeclusters.reconcile_node_cluster[" in console
    for task in settings.LOG_ROUTINE_TASKS:
        assert f"Task {task}[" not in console
        assert f"({task})" not in console  # beat's "Sending due task"
