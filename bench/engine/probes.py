"""What runs beside the fleet: Celery beat as `make run` starts it, and the list page's open-loop probe."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import psutil

from bench import support

FLEET_LIST_PATH = "/api/v1/nodecluster/?limit=25"


class Beat:
    """Celery beat as `make run` starts it (the sweep every ENGINE_SWEEP_INTERVAL), unless not `enabled`."""

    def __init__(self, *, env: dict[str, str], run: str, enabled: bool) -> None:
        self.env, self.enabled, self.process = env, enabled, None
        self.var_dir = Path(env["TUTUM_VAR_DIR"])
        self.run = run

    def __enter__(self) -> Beat:
        if self.enabled:
            schedule = str(self.var_dir / f"beat-{self.run}")
            args = ["celery", "-A", "tutum_api", "beat", "--loglevel", "INFO", "--schedule", schedule]
            self.process = support.spawn(args, env=self.env, log_path=self.var_dir / f"beat-{self.run}.log")
        return self

    def __exit__(self, *exc_info) -> None:
        support.stop(self.process)


class ListProbe:
    """GET the list page at a fixed rate (open loop: a slow answer does not delay the next request), as each of the
    fleet's users in turn; every answer is kept with the moment it was due.

    The requests go out from a pool of threads, each with one keep-alive connection of the standard library's
    `http.client`: the probe shares the machine with what it measures, and an asyncio client's connection pool cost
    this process more CPU the longer the server's backlog grew (httpx: a third of a core while list pages queued
    behind the deploys), taking it from the server just when it was slowest. Latency counts from when a request
    was due, so a request waiting for a free thread is counted as waiting (no coordinated omission)."""

    THREADS = 64

    def __init__(self, *, url: str, users: list[tuple[str, str]], rate: float) -> None:
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port, self.rate = parts.hostname, parts.port, rate
        self.headers = [{"Authorization": f"ApiKey {name}:{key}"} for name, key in users]
        self.samples: list[tuple[float, float, int | str]] = []  # (due at, seconds, status)
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="list-probe", daemon=True)

    def __enter__(self) -> ListProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="list-probe") as pool:
            due = time.monotonic()
            for number in itertools.count():
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                pool.submit(self._one, due, self.headers[number % len(self.headers)])
                due += 1 / self.rate

    def _one(self, due: float, headers: dict[str, str]) -> None:
        import http.client

        try:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            connection.request("GET", FLEET_LIST_PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                connection.close()
                self._local.connection = None
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            self._local.connection.close()
            self._local.connection = None
        self.samples.append((due, time.monotonic() - due, status))

    def window(self, start: float, end: float) -> tuple[list[float], Counter]:
        """Latencies of the requests asked between `start` and `end` (monotonic), and the unexpected answers."""
        latencies, errors = [], Counter()
        for asked, seconds, status in list(self.samples):
            if start <= asked < end:
                latencies.append(seconds)
                if status != 200:
                    errors[status] += 1
        return latencies, errors


def postgres_processes() -> list[psutil.Process]:
    """The local PostgreSQL server's processes (its backends among them), when this user may read them."""
    return [process for process in psutil.process_iter(["name"]) if process.info["name"] == "postgres"]


def latency_cells(latencies: list[float]) -> list[float]:
    return [
        len(latencies),
        support.percentile(latencies, 0.5) * 1000,
        support.percentile(latencies, 0.99) * 1000,
        max(latencies, default=float("nan")) * 1000,
    ]
