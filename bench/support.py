"""What every benchmark shares: a throw-away PostgreSQL database and var dir, subprocesses, memory sampling, tables."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
#: The server's maintenance database; each run creates (and drops) its own database next to it.
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _terminate_as_exit(signum, frame) -> None:
    # SIGTERM (a Makefile interrupted, a CI timeout) must still run the `finally` blocks that drop the database.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def bench_environment(*, env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """A fresh database `bench_tutum_<pid>` and var dir, Django set up and migrated on them; both removed after.

    `env` is applied to this process before Django reads its settings, and the returned environment (the process
    environment at that point) is what subprocesses should be started with.
    """
    signal.signal(signal.SIGTERM, _terminate_as_exit)
    name = f"bench_tutum_{os.getpid()}"
    var_dir = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(POSTGRES_URL)
        os.environ.pop("REDIS_URL", None)  # a Redis cache is not what these runs measure; throttling is off
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.settings",
                "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
                "TUTUM_VAR_DIR": str(var_dir),
                "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "metrics"),
                "API_THROTTLE_RATE": "",
                "LOG_FORMAT": "json",
                # A throwaway secret key kept under the benchmark's var dir, as `make run` keeps its own.
                "TUTUM_EMBEDDED": "1",
                **(env or {}),
            }
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        yield dict(os.environ)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


def _admin(sql: str) -> None:
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def machine_summary() -> str:
    """One line naming the machine and the versions, so figures can be compared across runs."""
    import django
    from django.db import connection

    postgres = "?"
    with contextlib.suppress(Exception), connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
    memory = psutil.virtual_memory().total / 2**30
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    # Other work on the machine (a test run) slows every figure; the ratios, measured side by side, much less.
    busy = psutil.cpu_percent(interval=1.0)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {memory:.1f} GiB, "
        f"Python {platform.python_version()}, Django {django.get_version()}, PostgreSQL {postgres}, "
        f"commit {commit or '?'}\n"
        f"background load before start: CPU {busy:.0f} % busy over 1 s, load average {load} (1, 5, 15 min)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(args: list[str], *, env: dict[str, str], log_path: Path, nice: int = 0) -> subprocess.Popen:
    """A child process (`python -m ...`) in its own session, so stopping it stops its own children and no others;
    `nice` lowers its CPU priority (and its threads'), and its session's where the kernel groups by session."""
    preexec = None
    if nice:
        from nodeclusters.management.commands.worker import lower_priority

        preexec = functools.partial(lower_priority, nice)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec,
    )


def stop(process: subprocess.Popen | None, *, timeout: float = 15) -> None:
    """SIGTERM the child's process group (it is the group leader), SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else ""


def family(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes and all their descendants that are still alive."""
    found = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            found[process.pid] = process
            for child in process.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


class MemorySampler:
    """Samples the RSS (and PSS, which splits shared pages fairly) of process trees in a background thread."""

    def __init__(self, pids: Iterable[int], *, interval: float = 0.1) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak_rss_total = 0
        self.peak_pss_total = 0
        self.peak_rss_single = 0
        self.processes_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        rss_total = pss_total = 0
        processes = family(self.pids)
        for process in processes:
            with contextlib.suppress(psutil.Error):
                memory = process.memory_full_info()
                rss_total += memory.rss
                pss_total += getattr(memory, "pss", memory.rss)
                self.peak_rss_single = max(self.peak_rss_single, memory.rss)
        self.peak_rss_total = max(self.peak_rss_total, rss_total)
        self.peak_pss_total = max(self.peak_pss_total, pss_total)
        self.processes_seen = max(self.processes_seen, len(processes))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def summary(self, what: str) -> str:
        mib = 2**20
        return (
            f"peak memory of {what} ({self.processes_seen} processes, sampled every {self.interval * 1000:.0f} ms): "
            f"RSS sum {self.peak_rss_total / mib:.0f} MiB (largest process {self.peak_rss_single / mib:.0f} MiB), "
            f"PSS sum {self.peak_pss_total / mib:.0f} MiB"
        )


def cpu_seconds(processes: Iterable[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each process, by pid."""
    found = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            found[process.pid] = times.user + times.system
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_seconds` snapshots (processes born in between count from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0 < fraction <= 1) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(fraction * len(ordered) + 0.999999))
    return ordered[min(rank, len(ordered)) - 1]


def table(headers: list[str], rows: list[list]) -> str:
    """A plain text table, right-aligned except for the first column."""
    cells = [[str(header) for header in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = []
    for row in cells:
        lines.append(
            "  ".join(
                value.ljust(widths[index]) if index == 0 else value.rjust(widths[index])
                for index, value in enumerate(row)
            ).rstrip()
        )
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def deployed_node(cluster, index: int, *, now, **fields):
    """An unsaved Node row of `cluster` as the engine leaves a deployed one (for bulk seeding); `index` makes its
    address and name unique within the cluster."""
    from nodeclusters.choices import NodeState
    from nodeclusters.models import Node

    return Node(
        owner_id=cluster.owner_id,
        node_cluster=cluster,
        node_type_id=cluster.node_type_id,
        region_id=cluster.region_id,
        state=NodeState.DEPLOYED,
        external_fqdn=f"{cluster.name}-{index}.node.tutum.local",
        public_ip=f"198.18.{index // 250}.{index % 250 + 1}",
        cpu=1,
        memory=1024,
        disk=60,
        docker_version="1.9.1",
        deployed_datetime=now,
        last_seen=now,
        **{"tags": list(cluster.tags), **fields},
    )


def wait_for(predicate, *, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
