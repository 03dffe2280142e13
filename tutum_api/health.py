"""Process health for orchestrators: `/healthz` (the process answers) and `/readyz` (database and broker reachable)."""

import logging

from django.db import connection
from django.http import JsonResponse

from tutum_api.celery import app as celery_app

logger = logging.getLogger(__name__)


def healthz(request):
    """200 while the process can serve requests at all."""
    return JsonResponse({"status": "ok"})


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure means "not ready"
        # The error text names hosts, users and paths: it goes to the log, and the answer only names the service.
        logger.exception("readiness: the database is unreachable")
        return False
    return True


def _broker_answers() -> bool:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        logger.exception("readiness: the broker is unreachable")
        return False
    return True


def readyz(request):
    """200 when the database and the broker answer; 503 naming the one that does not (the log says why)."""
    failing = [
        name for name, answers in (("database", _database_answers()), ("broker", _broker_answers())) if not answers
    ]
    if failing:
        return JsonResponse(
            {
                "error": "; ".join(f"{name} unreachable" for name in failing),
                "checks": dict.fromkeys(failing, "unreachable"),
            },
            status=503,
        )
    return JsonResponse({"status": "ready", "checks": {"database": "ok", "broker": "ok"}})
