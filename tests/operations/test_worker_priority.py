"""The engine's workers yield the CPU to the API: `manage.py worker` runs its Celery processes at WORKER_NICE, in the
scheduling group the API server is in (`make run`) or in a group of their own that it lowers too (a session of its
own, as `setsid`, a tmux window or the benchmarks start it).

Linux's autogroup scheduling (on by default in most distributions' kernels) shares the CPU between sessions first
and only then by nice within each: a worker at nice 10 in a session of its own got as much CPU as the API server,
and the list page's p99 while a fleet converged was 4-7 times its idle figure instead of 0.5-1.4
(bench/README.md, "The workers' priority")."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.support import ROOT
from tests.support.engine import wait_until
from tests.support.stack import RunStack

pytestmark = pytest.mark.stack

AUTOGROUP = Path("/proc/self/autogroup")


def _autogroup(process: psutil.Process) -> tuple[str, int]:
    """(group, nice) from /proc/<pid>/autogroup, e.g. ("/autogroup-85", 0)."""
    group, _, nice = Path(f"/proc/{process.pid}/autogroup").read_text().split()
    return group, int(nice)


def _celery_workers(parent: psutil.Process) -> list[psutil.Process]:
    def found():
        workers = [
            child
            for child in parent.children(recursive=True)
            if {"celery", "worker"} <= set(child.cmdline())  # not beat, not the supervising `manage.py worker`
        ]
        return workers or None

    return wait_until(found, timeout=30, what="the Celery worker processes")


@pytest.fixture
def autogroups():
    if not AUTOGROUP.exists():
        pytest.skip("this kernel has no autogroup scheduling: nice alone ranks the processes")


def test_under_make_run_the_workers_share_the_api_servers_group_at_a_lower_priority(tmp_path):
    with RunStack(var_dir=tmp_path / "stack") as stack:
        runstack = psutil.Process(stack.process.pid)
        web = [child for child in runstack.children(recursive=True) if "gunicorn" in " ".join(child.cmdline())]
        workers = _celery_workers(runstack)
        assert web, "runstack should have started gunicorn"
        base = runstack.nice()
        assert {process.nice() for process in web} == {base}
        assert {process.nice() for process in workers} == {min(19, base + 10)}
        if AUTOGROUP.exists():  # one group for both, so the nice values rank them against each other
            assert {_autogroup(process) for process in web + workers} == {_autogroup(runstack)}


@contextlib.contextmanager
def _manage_worker(tmp_path: Path, **popen) -> Iterator[psutil.Process]:
    """`manage.py worker` on the embedded broker, WORKER_NICE=7, one Celery process: yields that process."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update({"TUTUM_EMBEDDED": "1", "TUTUM_VAR_DIR": str(tmp_path / "var"), "WORKER_NICE": "7"})
    command = [sys.executable, "manage.py", "worker", "--processes", "1", "--concurrency", "1"]
    supervisor = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen
    )
    try:
        yield _celery_workers(psutil.Process(supervisor.pid))[0]
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)


def test_a_worker_in_a_session_of_its_own_lowers_its_sessions_priority_too(tmp_path, autogroups):
    ours = _autogroup(psutil.Process())
    with _manage_worker(tmp_path, start_new_session=True) as worker:
        group, nice = _autogroup(worker)
        assert group != ours[0]
        assert nice == 7
        assert worker.nice() == min(19, psutil.Process().nice() + 7)
    assert _autogroup(psutil.Process()) == ours  # the session that started it keeps its priority


def test_a_worker_sharing_its_session_leaves_the_sessions_priority_alone(tmp_path, autogroups):
    """`manage.py worker` typed at a shell: lowering the session's group would slow the shell and all it runs."""
    ours = _autogroup(psutil.Process())
    with _manage_worker(tmp_path, process_group=0) as worker:
        assert worker.nice() == min(19, psutil.Process().nice() + 7)
        assert _autogroup(worker) == ours
