"""Stream test setup."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture(scope="session", autouse=True)
def _async_threads_connections_closed(django_db_setup, django_db_blocker):
    """After the last test, before the test database is dropped: the connection asgiref's thread opened for these
    tests' database reads (`database_sync_to_async` keeps it, as the stream server does) is closed, or PostgreSQL
    refuses to drop a database another session is using."""
    yield
    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())
