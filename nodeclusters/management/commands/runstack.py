"""`manage.py runstack`: what `make run` starts: migrate, print credentials, then web server, worker and beat.

Everything runs in the foreground as child processes of this command; Ctrl-C (or any child dying) stops all.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from nodeclusters.services import api_key_create


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together (the embedded default needs no services)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--worker-concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "32")))

    def handle(self, *args, host, port, worker_concurrency, **options):
        call_command("migrate", verbosity=0, interactive=False)
        call_command("loadcatalog", verbosity=0)
        username, api_key, password = self._credentials()
        base = f"http://{host}:{port}"
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
                    f'  curl -H "Authorization: ApiKey $TUTUM_USER:$TUTUM_APIKEY" {base}/api/v1/nodecluster/',
                    f"Admin dashboard: {base}/admin/  user {username}"
                    + (f", password {password}" if password else " (password unchanged)"),
                    "Ctrl-C stops everything.",
                    "",
                ]
            )
        )
        self.stdout.flush()
        python = sys.executable
        children = [
            [
                python,
                "-m",
                "gunicorn",
                "tutum_api.wsgi",
                "--bind",
                f"{host}:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
            [
                python,
                "-m",
                "celery",
                "-A",
                "tutum_api",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(worker_concurrency),
                "--loglevel",
                "INFO",
            ],
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
        ]
        processes = [subprocess.Popen(command) for command in children]
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(process.poll() is None for process in processes):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    processes[0].wait(timeout=0.5)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 15
            for process in processes:
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    process.kill()
        if not stopping:
            raise SystemExit("a child process exited; stopped the rest")

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
