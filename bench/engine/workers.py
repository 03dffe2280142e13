"""What the engine benchmarks share: the workers as the tests or `make run` start them, and what they report."""

from __future__ import annotations

import os
import re
import uuid as uuid_module
from collections import Counter
from pathlib import Path

import psutil

from bench import support
from bench.api import MAKE_RUN_WEB

#: The workers' broker, flushed before and after (BENCH_REDIS_URL moves it, e.g. beside another run).
BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CONTEXT_PATH = "/bench/engine/"
#: What `make run` starts (runstack's `manage.py worker`): worker processes x threads each, and their nice.
DEFAULT_LAYOUT = (2, 16)
DEFAULT_WORKER_NICE = 10
#: What `make run` serves the API with (runstack's gunicorn): workers x threads each.
DEFAULT_WEB = MAKE_RUN_WEB


class Workers:
    """Celery workers as tests/support/engine.py starts them: threads pool, no gossip, no mingle; no beat.

    With `as_make_run`, `manage.py worker` instead, exactly as `make run` starts its workers: `count` processes of
    `concurrency` threads each (at `nice`), under that command's own supervision.
    """

    def __init__(
        self, *, env: dict[str, str], count: int, concurrency: int, nice: int = 0, as_make_run: bool = False
    ) -> None:
        self.env, self.count, self.concurrency, self.nice = env, count, concurrency, nice
        self.as_make_run = as_make_run
        self.processes = []
        self.var_dir = Path(env["TUTUM_VAR_DIR"])

    def __enter__(self) -> Workers:
        from tutum_api.celery import app

        if self.as_make_run:
            args = ["django", "worker", "--processes", str(self.count)]
            args += ["--concurrency", str(self.count * self.concurrency), "--nice", str(self.nice)]
            self.processes.append(support.spawn(args, env=self.env, log_path=self.log_path(0)))
        for index in range(0 if self.as_make_run else self.count):
            args = ["celery", "-A", "tutum_api", "worker", "--pool", "threads", "--concurrency", str(self.concurrency)]
            args += ["--loglevel", "INFO", "--hostname", f"bench{index}-{uuid_module.uuid4().hex[:6]}@%h"]
            args += ["--without-gossip", "--without-mingle"]
            self.processes.append(support.spawn(args, env=self.env, log_path=self.log_path(index), nice=self.nice))

        def all_answer() -> bool:
            for index, process in enumerate(self.processes):
                if process.poll() is not None:
                    raise RuntimeError(f"worker {index} exited:\n{support.tail(self.log_path(index))}")
            return len(app.control.ping(timeout=0.5)) >= self.count

        if not support.wait_for(all_answer, timeout=60, interval=0.2):
            self.__exit__()
            raise RuntimeError(f"workers did not answer in 60 s:\n{support.tail(self.log_path(0))}")
        return self

    def log_path(self, index: int) -> Path:
        return self.var_dir / f"worker-{index}.log"

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            support.stop(process)


def reconcile_stats() -> tuple[float, float]:
    """(reconciles run, seconds spent in them) by every worker so far, from the shared Prometheus files."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    count = total = 0.0
    for metric in registry.collect():
        if metric.name == "tutum_reconcile_duration_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
    return count, total


class ActivitySampler:
    """Samples pg_stat_activity of the benchmark's database: how many backends are busy, and which wait on locks."""

    def __init__(self, *, interval: float = 0.1) -> None:
        import threading

        self.interval = interval
        self.samples = 0
        self.active = 0
        self.lock_waits = Counter()
        self.running = Counter()
        self.waits = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity-sampler", daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._cpu_before = psutil.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        after = psutil.cpu_times()
        busy = lambda times: sum(times) - times.idle - getattr(times, "iowait", 0.0)  # noqa: E731
        total = sum(after) - sum(self._cpu_before)
        self.cpu_seconds = busy(after) - busy(self._cpu_before)
        self.cpu_busy = self.cpu_seconds / total if total else float("nan")

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.is_set():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT wait_event_type, query, wait_event FROM pg_stat_activity "
                        "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
                    )
                    rows = cursor.fetchall()
                self.samples += 1
                self.active += len(rows)
                for wait_event_type, query, wait_event in rows:
                    self.waits[f"{wait_event_type or 'CPU'}:{wait_event or ''}"] += 1
                    statement = shorten(query)
                    if wait_event_type == "Lock":
                        self.lock_waits[statement] += 1
                    elif wait_event_type is None:
                        self.running[statement] += 1
                self._stop.wait(self.interval)
        finally:
            connection.close()

    @property
    def mean_active(self) -> float:
        return self.active / self.samples if self.samples else float("nan")

    @property
    def mean_lock_waits(self) -> float:
        return sum(self.lock_waits.values()) / self.samples if self.samples else float("nan")


def shorten(sql: str) -> str:
    """A statement with its column list elided, so statements on one table can be told apart by their WHERE."""
    # pg_stat_activity keeps the first 1,024 bytes of a statement, which a full column list can fill.
    sql = re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", " ".join(sql.split()), count=1)
    sql = re.sub(r'"nodeclusters_(\w+)"\.', "", sql)
    return sql[:150]


def provider_calls() -> Counter:
    """Driver calls by operation (every provider together) by every process so far, from the Prometheus files."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    calls = Counter()
    for metric in registry.collect():
        if metric.name == "tutum_provider_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    calls[sample.labels["operation"]] += sample.value
    return calls
