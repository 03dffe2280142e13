"""Test-wide setup: factories as fixtures, the seeded catalog, throttling off."""

import pytest
from rest_framework.test import APIClient

from tests import factories


@pytest.fixture(autouse=True)
def _no_throttling(settings):
    """Throttling is off except in the tests that narrow it (settings.API_THROTTLE_RATE)."""
    settings.API_THROTTLE_RATE = ""


@pytest.fixture(autouse=True)
def _engine_memory_cleared():
    """What the engine remembers per process starts empty in each test (ids are reused after a rollback): the region
    polls it scheduled, the names of catalog types."""
    from nodeclusters.catalog_rows import catalog_rows_forget
    from nodeclusters.node_steps import poll

    poll.region_polls_forget()
    catalog_rows_forget()  # a rolled-back test's catalog row id can come back with another name
    yield
    poll.region_polls_forget()
    catalog_rows_forget()


@pytest.fixture
def catalog(db):
    """The seeded catalog (migrations load it; transactional tests flush it, so load it again when missing)."""
    factories.ensure_catalog()


@pytest.fixture
def user(db):
    return factories.make_user("alice")


@pytest.fixture
def other_user(db):
    return factories.make_user("mallory")


@pytest.fixture
def api_key(user):
    return factories.make_api_key(user)


@pytest.fixture
def client(user, api_key, catalog) -> APIClient:
    """An API client authenticated as `user` with the ApiKey scheme."""
    return factories.api_client(user, api_key)


@pytest.fixture
def other_client(other_user, catalog) -> APIClient:
    """An API client authenticated as `other_user`, for tenancy checks."""
    return factories.api_client(other_user, factories.make_api_key(other_user))


@pytest.fixture
def anonymous_client(catalog) -> APIClient:
    return APIClient()
