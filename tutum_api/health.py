"""Process health for orchestrators: `/healthz` (the process answers) and `/readyz` (database and broker reachable)."""

from django.db import connection
from django.http import JsonResponse

from tutum_api.celery import app as celery_app


def healthz(request):
    """200 while the process can serve requests at all."""
    return JsonResponse({"status": "ok"})


def _database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means "not ready", and the body says which
        return f"database unreachable: {error}"
    return None


def _broker() -> str | None:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        return f"broker unreachable: {error}"
    return None


def readyz(request):
    """200 when the database and the broker answer; 503 naming the one that does not."""
    problems = {name: problem for name, problem in (("database", _database()), ("broker", _broker())) if problem}
    if problems:
        return JsonResponse({"error": "; ".join(problems.values()), "checks": problems}, status=503)
    return JsonResponse({"status": "ready", "checks": {"database": "ok", "broker": "ok"}})
