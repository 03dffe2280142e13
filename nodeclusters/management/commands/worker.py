"""`manage.py worker`: the engine's Celery workers as `make run` starts them, several processes of threads each.

The threads pool keeps dozens of provider calls in flight in one process, but the engine's own work (the ORM, Celery)
runs under one GIL there: one process uses one core. `--processes` (WORKER_PROCESSES, default 2) workers of
WORKER_CONCURRENCY / processes threads each use both cores of a small machine (bench/README.md, `bench.engine
--fleet`, has the figures). They run at a lower CPU priority (`--nice`, WORKER_NICE, default 10; `lower_priority`),
so the API answers first while a fleet converges and the engine has every cycle it leaves. Each one that exits is
started again with backoff, as runstack restarts its children; this command exits once all have stopped (Ctrl-C,
SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from django.core.management.base import BaseCommand

from .runstack import Supervisor


def worker_argvs(*, processes: int, concurrency: int, loglevel: str = "INFO") -> list[tuple[str, list[str]]]:
    """The Celery worker processes, by name: `concurrency` threads shared out over `processes` processes."""
    threads = max(1, -(-concurrency // processes))
    return [
        (
            f"worker-{number}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tutum_api",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(threads),
                "--loglevel",
                loglevel,
                # Two workers on one host need two names, or Celery's remote control mixes them up.
                "--hostname",
                f"worker{number}@%h",
            ],
        )
        for number in range(1, processes + 1)
    ]


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by `nice`, for the workers it starts and every thread they run.

    Linux's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on in most distributions' kernels)
    shares the CPU between sessions first; a nice value only ranks a process against the others of its session. Under
    runstack the workers share the API server's session, and nice is enough. A worker leading a session of its own
    (`setsid`, a tmux or screen window, the benchmarks) also lowers that session's priority, or the API server would
    get no more of the CPU than it (bench/README.md, "The workers' priority"). A worker typed at a shell leaves the
    shell's session alone."""
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        # No autogroup here (another kernel): nice alone ranks the processes.
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))


class Command(BaseCommand):
    help = "Run the engine's Celery workers: several processes of threads each, each restarted if it exits."

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=int(os.environ.get("WORKER_PROCESSES", "2")))
        parser.add_argument(
            "--concurrency",
            type=int,
            default=int(os.environ.get("WORKER_CONCURRENCY", "32")),
            help="threads in all, shared out over the processes",
        )
        parser.add_argument("--nice", type=int, default=int(os.environ.get("WORKER_NICE", "10")))
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, processes, concurrency, nice, loglevel, **options):
        if nice:
            lower_priority(nice)
        supervisor = Supervisor(
            worker_argvs(processes=max(1, processes), concurrency=max(1, concurrency), loglevel=loglevel),
            write=self._console,
        )
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        supervisor.run()

    def _console(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
