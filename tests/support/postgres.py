"""For tests of concurrent writers: PostgreSQL's row locks, and who is waiting on one."""

import os
import threading

import pytest
from django.db import connection


def require_postgresql() -> None:
    """Skip on SQLite (no row locks to race on), but never in CI: there the PostgreSQL pass must run it."""
    if connection.vendor != "postgresql":
        if os.environ.get("CI") == "true":
            pytest.fail("the concurrency tests need PostgreSQL in CI (DATABASE_URL=postgres://...)")
        pytest.skip("needs PostgreSQL (row locks); make test's PostgreSQL pass runs it")


def lock_waiters() -> int:
    """How many sessions of this database wait for a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    """Until `condition()` holds, looking every 50 ms; AssertionError naming `what` after `timeout` seconds."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")
