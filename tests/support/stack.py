"""`make run`'s exact process layout for tests: `manage.py runstack` as a subprocess on free 127.0.0.1 ports.

The stack runs on the embedded default (SQLite file and embedded broker under its own var dir, simulated
clouds) unless `env` says otherwise; its banner gives the API key and the hosts, as a user would paste them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.engine import ROOT, _answers, free_port, wait_until

#: Variables of the test process that must not leak into the stack (it is `make run`, not the test database).
_NOT_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "TEST_REDIS_URL", "DJANGO_SETTINGS_MODULE")


class RunStack:
    """One `manage.py runstack`; `start()` waits for its banner and for the REST host to answer."""

    def __init__(self, *, var_dir: Path, env: dict[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.stream_port = free_port()
        self.env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        self.env.update(
            {
                "TUTUM_VAR_DIR": str(var_dir),
                "PORT": str(self.port),
                "STREAM_PORT": str(self.stream_port),
                "HOST": "127.0.0.1",
                "TUTUM_ADMIN_PASSWORD": "stack-test-password",
                "LOG_FORMAT": "plain",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )
        self.log_path = var_dir / "runstack.log"
        self.process: subprocess.Popen | None = None
        self.user = ""
        self.apikey = ""
        self.stream_host = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> RunStack:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._banner_read, timeout=timeout, what="runstack's banner", engine=self)
        wait_until(lambda: _answers(f"{self.url}/healthz"), timeout=timeout, what="the REST host", engine=self)
        return self

    def _banner_read(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"runstack exited with {self.process.returncode}\n{self.logs()}")
        text = self.output()
        names = (("TUTUM_USER", "user"), ("TUTUM_APIKEY", "apikey"), ("TUTUM_STREAM_HOST", "stream_host"))
        for name, attribute in names:
            found = re.findall(rf"export {name}=(\S+)", text)
            if found:
                setattr(self, attribute, found[-1])
        return bool(self.user and self.apikey)

    @property
    def auth_header(self) -> str:
        return f"ApiKey {self.user}:{self.apikey}"

    def client_env(self) -> dict[str, str]:
        """What the banner tells a user to export, for running a client against this stack."""
        env = {"TUTUM_USER": self.user, "TUTUM_APIKEY": self.apikey, "TUTUM_REST_HOST": self.url}
        if self.stream_host:
            env["TUTUM_STREAM_HOST"] = self.stream_host
        return env

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self) -> str:
        return f"--- {self.log_path.name} (last 8000 characters)\n{self.output()[-8000:]}"

    def stop(self, timeout: float = 30) -> int | None:
        """Ctrl-C, as a user stops it; returns runstack's exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode

    def __enter__(self) -> RunStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_output(stack: RunStack, pattern: str, *, timeout: float) -> re.Match:
    """Wait until runstack's console shows `pattern` (a regular expression); return the match."""
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(pattern, stack.output())
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"runstack never printed {pattern!r}\n{stack.logs()}")
        time.sleep(0.2)
