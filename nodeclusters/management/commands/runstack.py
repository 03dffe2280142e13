"""`manage.py runstack`: what `make run` starts: migrate, print credentials, then supervise the server's processes.

The children (REST server, stream server, Celery worker, Celery beat; `_child_specs` lists them) run in the foreground.
One that exits unexpectedly is started again after a backoff (1 s, doubling to 30 s, back to 1 s once it has
stayed up for a minute), with one line on the console saying so; only Ctrl-C or SIGTERM stops everything: each
child is asked to stop (SIGTERM), waited for up to 15 s, then killed with its whole process group.

Why our own loop rather than a process manager: honcho (and foreman) stop every process when one exits, which
is what this command used to do and what made a worker's crash take the whole server down; supervisord
restarts, but it is a daemon with its own config file and log files, gives up on a program that fails to start
`startretries` times in a row, and would put a second process tree between the user's Ctrl-C and the children.
The loop below is the part of those we need: restart with backoff, forward the stop, leave no orphan.

Each child gets its own process group, so stopping or killing it reaches its own children (gunicorn's workers)
and nothing else, and on Linux asks to receive SIGTERM if this command dies without cleaning up (SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from nodeclusters.services import api_key_create

#: Restart backoff: the first restart waits FIRST, each next one twice as long, at most MAX.
RESTART_BACKOFF_FIRST_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
#: A child that stayed up this long was healthy; its next exit starts the backoff from the beginning again.
STABLE_AFTER_SECONDS = 60.0
#: How long children get to stop cleanly after Ctrl-C or SIGTERM before they are killed.
STOP_TIMEOUT_SECONDS = 15.0
#: How often the loop looks at the children.
POLL_SECONDS = 0.2


@dataclass
class Child:
    """One supervised process: its name and command line, the running process, and its restart state."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float | None = None
    leftover_group: int | None = None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when runstack dies (Linux's PR_SET_PDEATHSIG), so nothing is orphaned."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Starts the children, restarts those that exit with backoff, and stops them all on request."""

    def __init__(
        self,
        children: list[tuple[str, list[str]]],
        *,
        write,
        first_backoff: float = RESTART_BACKOFF_FIRST_SECONDS,
        max_backoff: float = RESTART_BACKOFF_MAX_SECONDS,
        stable_after: float = STABLE_AFTER_SECONDS,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.children = [Child(name=name, argv=argv, backoff=first_backoff) for name, argv in children]
        self.write = write
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self.stopping = False
        self.stop_requests = 0

    def request_stop(self, signum, frame) -> None:
        self.stopping = True
        self.stop_requests += 1
        if self.stop_requests > 1:
            # A second Ctrl-C: the user does not want to wait for a clean stop.
            self._signal_all(signal.SIGKILL)

    def run(self) -> None:
        for child in self.children:
            self._start(child)
        try:
            while not self.stopping:
                now = time.monotonic()
                for child in self.children:
                    if self.stopping:
                        break
                    self._watch(child, now)
                time.sleep(POLL_SECONDS)
        finally:
            self.stop_all()

    def _start(self, child: Child) -> None:
        if child.leftover_group is not None:
            # What the dead child left in its group (gunicorn workers of a killed master) goes before the new one.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.leftover_group, signal.SIGKILL)
            child.leftover_group = None
        child.process = subprocess.Popen(
            child.argv, process_group=0, preexec_fn=_die_with_parent if sys.platform == "linux" else None
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def _watch(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            return
        if now - child.started_at >= self.stable_after:
            child.backoff = self.first_backoff
        delay = child.backoff
        child.backoff = min(child.backoff * 2, self.max_backoff)
        child.restarts += 1
        child.restart_at = now + delay
        child.leftover_group = child.process.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.leftover_group, signal.SIGTERM)
        self.write(
            f"runstack: {child.name} exited with code {code}; restarting in {delay:g} s (restart {child.restarts})"
        )

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            for group in (child.process.pid if child.process else None, child.leftover_group):
                if group is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signum)

    def stop_all(self) -> None:
        """SIGTERM to every child's group, up to `stop_timeout` seconds for them to exit, then SIGKILL."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.write(f"runstack: {child.name} did not stop within {self.stop_timeout:g} s; killing it")
        # Whatever is left in the groups (a child that ignored SIGTERM, its own children) goes now.
        self._signal_all(signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(timeout=5)


class Command(BaseCommand):
    help = "Run the REST and stream servers, a Celery worker and Celery beat together, restarting any that exits."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--stream-port",
            type=int,
            default=int(os.environ["STREAM_PORT"]) if os.environ.get("STREAM_PORT") else None,
            help="the stream server's port (default: --port + 1)",
        )
        parser.add_argument("--worker-concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "32")))
        # gunicorn's shape. 8 threads a process, not 4: while a fleet's 100 deploy requests hold the threads, list
        # pages queue behind them, and the list page's p99 as the engine converges was a median 6 times lower with 8
        # (bench.engine --fleet --fleet-web 2x4 / 2x8, bench/README.md).
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
        parser.add_argument("--web-threads", type=int, default=int(os.environ.get("WEB_THREADS", "8")))

    def handle(self, *args, host, port, stream_port, worker_concurrency, web_workers, web_threads, **options):
        stream_port = stream_port if stream_port is not None else port + 1
        call_command("migrate", verbosity=0, interactive=False)
        call_command("loadcatalog", verbosity=0)
        username, api_key, password = self._credentials()
        base = f"http://{host}:{port}"
        stream = f"{host}:{stream_port}"
        # The children read it: the REST host sends SSE clients to the stream server there.
        os.environ.setdefault("STREAM_PUBLIC_URL", f"http://{stream}")
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = settings.CELERY_BROKER_URL.split("://")[0]
        providers = "simulated" if settings.SIMULATE_PROVIDERS else "real"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Tutum API on {base}/api/v1/  (database: {database}, broker: {broker}, providers: {providers})",
                    f"  export TUTUM_USER={username}",
                    f"  export TUTUM_APIKEY={api_key}",
                    f"  export TUTUM_REST_HOST={base}",
                    f"  export TUTUM_STREAM_HOST=ws://{stream}",
                    f'  curl -H "Authorization: ApiKey $TUTUM_USER:$TUTUM_APIKEY" {base}/api/v1/nodecluster/',
                    f"Stream API on ws://{stream}/v1/events (websocket; `tutum event`) and, as SSE:",
                    f'  curl -N -H "Authorization: ApiKey $TUTUM_USER:$TUTUM_APIKEY" http://{stream}/api/v1/events/',
                    f"Admin dashboard: {base}/admin/  user {username}"
                    + (f", password {password}" if password else " (password unchanged)"),
                    "Ctrl-C stops everything.",
                    "",
                ]
            )
        )
        self.stdout.flush()
        supervisor = Supervisor(
            self._child_specs(
                host=host,
                port=port,
                stream_port=stream_port,
                worker_concurrency=worker_concurrency,
                web=(web_workers, web_threads),
            ),
            write=self._console,
        )
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        supervisor.run()

    def _console(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _child_specs(
        self, *, host: str, port: int, stream_port: int, worker_concurrency: int, web: tuple[int, int] = (2, 8)
    ) -> list[tuple[str, list[str]]]:
        """The supervised processes, by name: the REST server, the stream server, the worker and beat."""
        python = sys.executable
        return [
            (
                "web",
                [
                    python,
                    "-m",
                    "gunicorn",
                    "tutum_api.wsgi",
                    # The settings every REST server shares (its limits, keep-alive, JSON error answers).
                    "--config",
                    "python:tutum_api.gunicorn_conf",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    str(web[0]),
                    "--threads",
                    str(web[1]),
                    "--access-logfile",
                    "-",
                    # gunicorn's control socket defaults to one path in $HOME, which two stacks would fight over.
                    "--no-control-socket",
                ],
            ),
            (
                "stream",
                [
                    python,
                    "-m",
                    "uvicorn",
                    "tutum_api.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(stream_port),
                    # The websockets library's sans-I/O protocol: it answers pings and waits for a slow client's
                    # socket to drain (bench/README.md, bench.stream, has the figures against the other choices).
                    "--ws",
                    "websockets-sansio",
                    "--lifespan",
                    "off",
                    "--no-access-log",
                ],
            ),
            (
                # `manage.py worker`: WORKER_PROCESSES Celery workers (2) sharing the threads, at a lower CPU priority
                # (WORKER_NICE), each restarted if it exits; one process would use one core (see worker.py).
                "worker",
                [
                    python,
                    str(settings.BASE_DIR / "manage.py"),
                    "worker",
                    "--concurrency",
                    str(worker_concurrency),
                ],
            ),
            (
                "beat",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "tutum_api",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    settings.CELERY_BEAT_SCHEDULE_FILENAME,
                ],
            ),
        ]

    def _credentials(self) -> tuple[str, str, str | None]:
        """The dashboard superuser (created on first run) and a fresh API key for it."""
        user_model = get_user_model()
        username = os.environ.get("TUTUM_USER", "admin")
        user = user_model.objects.filter(username=username).first()
        password = None
        if user is None:
            password = os.environ.get("TUTUM_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser(username=username, email="", password=password)
            if os.environ.get("TUTUM_ADMIN_PASSWORD"):
                password = "(from TUTUM_ADMIN_PASSWORD)"
        _, raw_key = api_key_create(user=user, label="make run")
        return username, raw_key, password
