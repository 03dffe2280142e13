"""Real engine processes for integration tests: Celery workers and beat as subprocesses on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

from tests.support.moto_server import DUMMY_AWS_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the database the test process is using (pytest-django's `test_` copy)."""
    params = connection.settings_dict
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    user = params.get("USER") or "postgres"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


class Engine:
    """Workers and beat sharing one environment; workers can be killed with SIGKILL and started again."""

    def __init__(self, *, broker_url: str, var_dir: Path, env: dict[str, str], concurrency: int = 16) -> None:
        self.concurrency = concurrency
        self.env = {
            **os.environ,
            **DUMMY_AWS_ENVIRONMENT,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "TUTUM_VAR_DIR": str(var_dir),
            "ENGINE_POLL_INTERVAL": "0.5",
            "ENGINE_STUCK_AFTER": "4",
            "ENGINE_LEASE_SECONDS": "6",
            "ENGINE_SWEEP_INTERVAL": "2",
            "ENGINE_LEAK_SWEEP_INTERVAL": "3",
            "ENGINE_RETRY_BACKOFF_MAX": "2",
            "CELERY_VISIBILITY_TIMEOUT": "30",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.var_dir = var_dir
        self.workers: list[subprocess.Popen] = []
        self.beat: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self._logs: list[Path] = []

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log_path = self.var_dir / f"{name}-{len(self._logs)}.log"
        self._logs.append(log_path)
        log = log_path.open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tutum_api", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self) -> subprocess.Popen:
        worker = self._spawn(
            "worker",
            [
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "INFO",
                "--hostname",
                f"worker{len(self.workers)}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        self.workers.append(worker)
        return worker

    def start_web(self) -> str:
        """gunicorn on a free 127.0.0.1 port, on the same database and broker; returns its base URL."""
        port = free_port()
        log_path = self.var_dir / f"web-{len(self._logs)}.log"
        self._logs.append(log_path)
        self.web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "tutum_api.wsgi",
                "--config",
                "python:tutum_api.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), timeout=30, what="gunicorn to answer", engine=self)
        return url

    def start_beat(self) -> None:
        self.beat = self._spawn("beat", ["beat", "--loglevel", "INFO", "--schedule", str(self.var_dir / "beat")])

    def kill_worker(self, worker: subprocess.Popen) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no shutdown, no acks, leases left held."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def stop(self) -> None:
        for process in [*self.workers, self.beat, self.web]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.beat, self.web]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in self._logs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


class PrivateRedis:
    """A redis-server of the test's own on a free port, which a fault test may stop and start again."""

    def __init__(self, var_dir: Path) -> None:
        self.port = free_port()
        self.var_dir = var_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.var_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._up, timeout=15, what="the private Redis to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


def wait_until(predicate, *, timeout: float, what: str, engine: Engine | None = None, interval: float = 0.25):
    """Poll `predicate` until it returns something truthy; fail with `what` (and the engine's logs) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = engine.logs() if engine else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(interval)
