"""`make run` heals instead of dying: runstack restarts a child that exits, with backoff, and says so; only Ctrl-C
or SIGTERM stops everything, and then nothing is left running."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading

import httpx
import psutil
import pytest

from bench.soak import StackClient, wait_converged
from nodeclusters.management.commands.runstack import Supervisor
from tests.support.engine import wait_until
from tests.support.stack import RunStack, wait_for_output

# `make run`'s own stack (SQLite, embedded broker): the PostgreSQL pass of `make test` leaves it out.
pytestmark = pytest.mark.stack


def _child(stack: RunStack, name: str) -> psutil.Process:
    """runstack's child running `name` ("gunicorn", "worker", "beat"), waiting for it after a restart."""

    def found():
        for child in psutil.Process(stack.process.pid).children():
            try:
                if name in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    return wait_until(found, timeout=30, what=f"runstack's {name} process", engine=stack)


def _family(stack: RunStack) -> list[psutil.Process]:
    return [psutil.Process(stack.process.pid), *psutil.Process(stack.process.pid).children(recursive=True)]


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _answers(stack: RunStack) -> bool:
    try:
        return httpx.get(f"{stack.url}/api/v1/nodecluster/", headers={"Authorization": stack.auth_header}).is_success
    except httpx.HTTPError:
        return False


def test_a_child_killed_with_sigkill_is_restarted_and_the_console_says_so(tmp_path):
    with RunStack(var_dir=tmp_path / "stack", env={"ENGINE_SWEEP_INTERVAL": "2"}) as stack:
        worker = _child(stack, "worker")
        worker.send_signal(signal.SIGKILL)
        wait_for_output(stack, r"runstack: worker exited with code -9; restarting in 1 s \(restart 1\)\n", timeout=10)
        assert _child(stack, "worker").pid != worker.pid
        # The web server too: the REST host answers again, from a new gunicorn.
        web = _child(stack, "gunicorn")
        web.send_signal(signal.SIGKILL)
        wait_for_output(stack, r"runstack: web exited with code -9; restarting in 1 s \(restart 1\)\n", timeout=10)
        wait_until(lambda: _answers(stack), timeout=30, what="the REST host after the restart", engine=stack)
        assert _child(stack, "gunicorn").pid != web.pid
        # The restarted worker works: a cluster deploys.
        client = StackClient(stack.url, stack.auth_header)
        try:
            uuid = client.create_cluster("after-restart", 2)
            assert wait_converged(client, stack.var_dir, live=[uuid], terminated=[], timeout=60) == []
        finally:
            client.close()
        # A second crash of the same child soon after waits twice as long.
        _child(stack, "worker").send_signal(signal.SIGKILL)
        wait_for_output(stack, r"runstack: worker exited with code -9; restarting in 2 s \(restart 2\)\n", timeout=10)
        _child(stack, "worker")
        assert _answers(stack)
    console = stack.output()
    assert len(re.findall(r"^runstack: .* exited with code", console, re.MULTILINE)) == 3


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_everything_and_leaves_no_process(tmp_path, how):
    stack = RunStack(var_dir=tmp_path / "stack").start()
    try:
        _child(stack, "worker")
        _child(stack, "beat")
        family = _family(stack)
        assert len(family) >= 6  # runstack, gunicorn master and 2 workers, worker, beat
        if how == "ctrl-c":
            exit_code = stack.stop()
        else:
            stack.process.send_signal(signal.SIGTERM)
            exit_code = stack.process.wait(timeout=30)
    finally:
        stack.stop()
    assert exit_code == 0, stack.logs()
    wait_until(lambda: all(_gone(process) for process in family), timeout=10, what="every process to exit")
    assert "exited with code" not in stack.output()


@pytest.mark.skipif(sys.platform != "linux", reason="the children ask Linux for a signal when runstack dies")
def test_children_do_not_outlive_a_runstack_killed_with_sigkill(tmp_path):
    stack = RunStack(var_dir=tmp_path / "stack").start()
    try:
        _child(stack, "worker")
        family = _family(stack)
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait(timeout=10)
        wait_until(lambda: all(_gone(process) for process in family), timeout=30, what="every child to exit")
    finally:
        for process in family:
            if not _gone(process):
                os.kill(process.pid, signal.SIGKILL)


def test_the_supervisor_backs_off_exponentially_and_resets_after_a_stable_run():
    lines = []
    crashing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = Supervisor([("crasher", crashing)], write=lines.append, first_backoff=0.1, max_backoff=0.4)
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        wait_until(lambda: len(lines) >= 5, timeout=20, what="five restarts")
    finally:
        supervisor.request_stop(signal.SIGTERM, None)
        runner.join(timeout=20)
    assert lines[:5] == [
        f"runstack: crasher exited with code 3; restarting in {delay} s (restart {number})"
        for number, delay in enumerate(["0.1", "0.2", "0.4", "0.4", "0.4"], start=1)
    ]
    # A child that stayed up longer than `stable_after` starts again from the first delay.
    lines.clear()
    brief = [sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(4)"]
    supervisor = Supervisor(
        [("brief", brief)], write=lines.append, first_backoff=0.1, max_backoff=0.4, stable_after=0.3
    )
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        wait_until(lambda: len(lines) >= 3, timeout=20, what="three restarts")
    finally:
        supervisor.request_stop(signal.SIGTERM, None)
        runner.join(timeout=20)
    assert all("restarting in 0.1 s" in line for line in lines[:3]), lines
    assert not runner.is_alive()
