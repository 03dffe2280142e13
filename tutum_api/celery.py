"""Celery application; its settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutum_api.settings")

app = Celery("tutum_api")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _manage_database_connections(**kwargs) -> None:
    """Treat each task like Django treats a request: keep a healthy connection (CONN_MAX_AGE), drop a broken one.

    Celery's own fixup closes every connection around every task instead (unless CELERY_DB_REUSE_MAX is set,
    which it is), which costs a PostgreSQL backend start per task; after a database restart, the broken
    connection is dropped here and the next query opens a new one.
    """
    from django.db import close_old_connections

    close_old_connections()
