"""The embedded broker's task throughput: kombu's filesystem transport (the old default) against the SQLite one.

    python -m bench.broker [--tasks 2000] [--publishers 4] [--concurrency 32] [--latency-tasks 40]

For each transport, side by side in one run, on a fresh var dir: one Celery worker as `make run` starts it
(threads pool, 32 threads, the project's Celery settings: acks_late, prefetch 1) and `--publishers` processes
publishing `--tasks` trivial tasks between them as fast as they can (one message per publish, as a request's
hand-off does), all starting at the same instant. A task appends its number to a file; the run ends when every
number is there. Printed: publish rate, end-to-end tasks/s (first publish to last task done), the latency of one
task sent to an idle worker (sent one at a time: mostly the broker's polling interval), whether the worker
crashed (the filesystem transport can hand it a half-written message, celery/kombu#1551), and the ratios.
Needs no PostgreSQL or Redis. `tests/operations/test_embedded_broker.py` uses the same app, worker and
publishers to check that concurrent publishers never produce a decode error.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from bench import support

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutum_api.settings")
os.environ.setdefault("TUTUM_EMBEDDED", "1")  # a throwaway secret key under var/, as `make run` keeps its own

#: The project's Celery settings (broker, acks, prefetch, serializer), read from Django settings on first use,
#: with one trivial task instead of the engine's. Not the current app: importing this module (the tests do) must
#: not change which app the project's `current_app` calls reach.
app = Celery("bench_broker", set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = {}

TASK_NAME = "bench.broker.record"
#: The transports compared, by name: the broker URL each runs with (None: the embedded default).
TRANSPORTS = {"filesystem": "filesystem://", "sqlite": None}


@app.task(name=TASK_NAME)
def record(done_path: str, number: int) -> None:
    """Append the task's number to `done_path` (one small O_APPEND write: whole lines, whatever the threads do)."""
    descriptor = os.open(done_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"{number}\n".encode())
    finally:
        os.close(descriptor)


def broker_env(var_dir: Path, broker_url: str | None) -> dict[str, str]:
    """The environment of every process of one run: its own var dir, the broker under test, nothing inherited."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tutum_api.settings",
            # A process of this checkout like `make run`'s: it may use the generated key in var/secret_key.
            "TUTUM_EMBEDDED": "1",
            "TUTUM_VAR_DIR": str(var_dir),
            "LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    return env


def start_worker(env: dict[str, str], log_path: Path, *, concurrency: int = 32) -> subprocess.Popen:
    """A Celery worker on this module's app, started as runstack starts the project's; waits until it is ready."""
    command = ["celery", "-A", "bench.broker", "worker", "--pool", "threads", "--concurrency", str(concurrency)]
    worker = support.spawn(
        [*command, "--loglevel", "INFO"],
        env=env,
        log_path=log_path,
    )
    deadline = time.monotonic() + 60
    while "ready." not in support.tail(log_path, 100_000):
        if worker.poll() is not None or time.monotonic() > deadline:
            support.stop(worker)
            raise RuntimeError(f"the worker did not start\n{support.tail(log_path)}")
        time.sleep(0.1)
    return worker


def start_publisher(env: dict[str, str], *, first: int, count: int, done_path: Path, start_at: float, log_path: Path):
    """A process that waits until `start_at` (time.time()), publishes tasks first..first+count-1, prints its time."""
    return support.spawn(
        ["bench.broker", "--publish", f"{first}:{count}", "--done", str(done_path), "--start-at", str(start_at)],
        env=env,
        log_path=log_path,
    )


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as done:
            return sum(1 for _ in done)
    except FileNotFoundError:
        return 0


@dataclass
class Run:
    """What one transport did."""

    transport: str
    tasks: int
    publishers: int
    publish_seconds: float = float("nan")
    end_to_end_seconds: float = float("nan")
    done: int = 0
    distinct_done: int = 0
    latencies: list[float] = field(default_factory=list)
    worker_crashed: bool = False
    problems: list[str] = field(default_factory=list)
    worker_log: str = ""

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.end_to_end_seconds if self.done >= self.tasks else float("nan")

    @property
    def publishes_per_second(self) -> float:
        return self.tasks / self.publish_seconds


def run_transport(
    transport: str,
    broker_url: str | None,
    *,
    var_dir: Path,
    tasks: int,
    publishers: int,
    concurrency: int = 32,
    latency_tasks: int = 0,
    timeout: float = 120,
) -> Run:
    """One worker, `publishers` publishing processes, `tasks` tasks; then `latency_tasks` one at a time."""
    run = Run(transport=transport, tasks=tasks, publishers=publishers)
    env = broker_env(var_dir, broker_url)
    worker_log = var_dir / "worker.log"
    done_path = var_dir / "done.txt"
    worker = start_worker(env, worker_log, concurrency=concurrency)
    processes = []
    try:
        start_at = time.time() + 4  # every publisher has imported Django and Celery by then
        share, extra = divmod(tasks, publishers)
        first = 0
        for index in range(publishers):
            count = share + (1 if index < extra else 0)
            processes.append(
                start_publisher(
                    env,
                    first=first,
                    count=count,
                    done_path=done_path,
                    start_at=start_at,
                    log_path=var_dir / f"publisher-{index}.log",
                )
            )
            first += count
        deadline = time.monotonic() + timeout
        while True:
            run.done = count_lines(done_path)
            if run.done >= tasks:
                run.end_to_end_seconds = time.time() - start_at
                break
            if worker.poll() is not None:
                run.worker_crashed = True
                run.problems.append(f"the worker exited with code {worker.returncode} after {run.done} tasks")
                break
            if time.monotonic() > deadline:
                run.problems.append(f"only {run.done} of {tasks} tasks done after {timeout:.0f} s")
                break
            time.sleep(0.02)
        publish_times = []
        for index, process in enumerate(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.problems.append(f"publisher {index} did not finish")
                continue
            output = support.tail(var_dir / f"publisher-{index}.log")
            if process.returncode != 0:
                run.problems.append(f"publisher {index} exited with code {process.returncode}: {output[-500:]}")
            for line in output.splitlines():
                if line.startswith("published "):
                    publish_times.append(float(line.split()[-2]))
        if publish_times:
            run.publish_seconds = max(publish_times)
        if latency_tasks and not run.worker_crashed and worker.poll() is None:
            latency = support.spawn(
                ["bench.broker", "--latency", str(latency_tasks), "--done", str(var_dir / "latency.txt")],
                env=env,
                log_path=var_dir / "latency.log",
            )
            latency.wait(timeout=60 + latency_tasks * 5)
            for line in support.tail(var_dir / "latency.log").splitlines():
                if line.startswith("latency "):
                    run.latencies = [float(value) for value in line.split()[1:]]
    finally:
        for process in processes:
            support.stop(process)
        support.stop(worker)
        run.worker_log = support.tail(worker_log, 200_000)
    numbers = done_path.read_text().split() if done_path.exists() else []
    run.done, run.distinct_done = len(numbers), len(set(numbers))
    if "Unrecoverable error" in run.worker_log:
        run.worker_crashed = True
        line = next(line for line in run.worker_log.splitlines() if "Unrecoverable error" in line)
        run.problems.append(f"worker log: {line.strip()[:300]}")
    return run


def _publish(first: int, count: int, done_path: str, start_at: float) -> None:
    """The publisher process: warm the connection up, wait for the common start, publish, print the time taken."""
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=3)
    time.sleep(max(start_at - time.time(), 0))
    started = time.monotonic()
    for number in range(first, first + count):
        app.send_task(TASK_NAME, args=[done_path, number])
    print(f"published {count} tasks in {time.monotonic() - started:.3f} s", flush=True)


def _latency(tasks: int, done_path: str) -> None:
    """One task at a time to an idle worker: seconds from send to done, each."""
    app.send_task(TASK_NAME, args=[done_path, -1])  # opens the connection and warms the worker up
    while count_lines(Path(done_path)) < 1:
        time.sleep(0.001)
    latencies = []
    for number in range(tasks):
        time.sleep(0.05)  # let the worker go idle (back to polling) between tasks
        sent = time.monotonic()
        app.send_task(TASK_NAME, args=[done_path, number])
        while count_lines(Path(done_path)) < number + 2:
            time.sleep(0.001)
        latencies.append(time.monotonic() - sent)
    print("latency " + " ".join(f"{value:.4f}" for value in latencies), flush=True)


def report(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        latency = run.latencies
        rows.append(
            [
                run.transport,
                run.tasks,
                run.publishers,
                run.publish_seconds,
                run.publishes_per_second,
                run.end_to_end_seconds if run.done >= run.tasks else float("nan"),
                run.tasks_per_second,
                statistics.median(latency) * 1000 if latency else float("nan"),
                support.percentile(latency, 0.9) * 1000 if latency else float("nan"),
                f"{run.distinct_done}/{run.tasks}",
                "CRASHED" if run.worker_crashed else "no",
            ]
        )
    lines = [
        support.table(
            [
                "transport",
                "tasks",
                "publishers",
                "publish s",
                "publish/s",
                "end-to-end s",
                "tasks/s",
                "idle p50 ms",
                "idle p90 ms",
                "done",
                "worker crashed",
            ],
            rows,
        )
    ]
    old = [run for run in runs if run.transport == "filesystem"]
    new = [run for run in runs if run.transport == "sqlite"]
    if old and new:

        def ratio(figure) -> float:
            return statistics.median(figure(run) for run in new) / statistics.median(figure(run) for run in old)

        lines.append(
            f"ratio sqlite / filesystem (medians over rounds): tasks/s {ratio(lambda run: run.tasks_per_second):.2f}, "
            f"publish/s {ratio(lambda run: run.publishes_per_second):.2f}, "
            f"idle latency {ratio(lambda run: statistics.median(run.latencies or [float('nan')])):.2f}"
        )
    for run in runs:
        for problem in run.problems:
            lines.append(f"  {run.transport}: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per transport")
    parser.add_argument("--publishers", type=int, default=4, help="publishing processes")
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads (make run: 32)")
    parser.add_argument("--latency-tasks", type=int, default=40, help="tasks sent one at a time to an idle worker")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, transports alternating in opposite orders")
    parser.add_argument("--only", default=",".join(TRANSPORTS), help="transports, comma-separated")
    parser.add_argument("--publish", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--done", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        first, count = (int(part) for part in args.publish.split(":"))
        _publish(first, count, args.done, args.start_at)
        return 0
    if args.latency:
        _latency(args.latency, args.done)
        return 0
    print(_machine_line(), flush=True)
    print(
        f"broker: {args.tasks} trivial tasks from {args.publishers} publishing processes to one worker "
        f"({args.concurrency} threads, acks_late, prefetch 1), then {args.latency_tasks} sent one at a time",
        flush=True,
    )
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    runs = []
    started = time.monotonic()
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else list(reversed(names))
        for name in order:
            with tempfile.TemporaryDirectory(prefix=f"bench_broker_{name}_") as directory:
                run = run_transport(
                    name,
                    TRANSPORTS[name],
                    var_dir=Path(directory),
                    tasks=args.tasks,
                    publishers=args.publishers,
                    concurrency=args.concurrency,
                    latency_tasks=args.latency_tasks,
                )
            runs.append(run)
            print(
                f"  {name}: {run.distinct_done}/{run.tasks} tasks done, worker crashed: {run.worker_crashed}",
                flush=True,
            )
    print(report(runs))
    print(f"bench.broker finished in {time.monotonic() - started:.0f} s")
    return 0


def _machine_line() -> str:
    """The CPUs, versions and background load (support.machine_summary asks PostgreSQL, which this does not use)."""
    import kombu
    import psutil
    import sqlalchemy

    busy = psutil.cpu_percent(interval=1.0)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, kombu {kombu.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}\n"
        f"background load before start: CPU {busy:.0f} % busy over 1 s, load average {load} (1, 5, 15 min)"
    )


if __name__ == "__main__":
    sys.exit(main())
