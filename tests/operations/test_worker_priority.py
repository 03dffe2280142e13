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
import signal
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


def _autogroup(process: psutil.Process) -> tuple[str, int] | None:
    """(group, nice) from /proc/<pid>/autogroup, e.g. ("/autogroup-85", 0); None in the root group, which the file
    shows empty: a process whose session descends from init's without a `setsid` (CI's runner starts the tests so)."""
    fields = Path(f"/proc/{process.pid}/autogroup").read_text().split()
    return (fields[0], int(fields[2])) if fields else None


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


# A shell of a session of its own that runs `manage.py worker` as its child, as one typed at a terminal runs.
_AT_A_SHELL = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


@contextlib.contextmanager
def _manage_worker(tmp_path: Path, *, under: list[str] = ()) -> Iterator[tuple[psutil.Process, psutil.Process]]:
    """`manage.py worker` on the embedded broker, WORKER_NICE=7, one Celery process, started in a session of its own
    (under a leader when `under` is given): yields (the session's leader, that Celery process)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update({"TUTUM_EMBEDDED": "1", "TUTUM_VAR_DIR": str(tmp_path / "var"), "WORKER_NICE": "7"})
    command = [*under, sys.executable, "manage.py", "worker", "--processes", "1", "--concurrency", "1"]
    leader = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield psutil.Process(leader.pid), _celery_workers(psutil.Process(leader.pid))[0]
    finally:
        os.killpg(leader.pid, signal.SIGTERM)  # the whole group: a shell passes no signal on
        leader.wait(timeout=30)


def test_a_worker_in_a_session_of_its_own_lowers_its_sessions_priority_too(tmp_path, autogroups):
    ours = _autogroup(psutil.Process())
    with _manage_worker(tmp_path) as (leader, worker):
        assert worker.nice() == min(19, psutil.Process().nice() + 7)
        group = _autogroup(worker)
        assert group is not None and group != ours
        assert group == (_autogroup(leader)[0], 7)
    assert _autogroup(psutil.Process()) == ours  # the session that started it keeps its priority


def test_a_worker_sharing_its_session_leaves_the_sessions_priority_alone(tmp_path, autogroups):
    """`manage.py worker` typed at a shell: lowering the session's group would slow the shell and all it runs."""
    with _manage_worker(tmp_path, under=_AT_A_SHELL) as (shell, worker):
        assert worker.nice() == min(19, psutil.Process().nice() + 7)
        assert shell.nice() == psutil.Process().nice()
        assert _autogroup(worker) == _autogroup(shell) == (_autogroup(shell)[0], 0)
