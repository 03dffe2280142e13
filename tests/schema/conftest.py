"""Fixtures of the schema tests: the realistic account every request runs against."""

import pytest

from tests.schema.world import World, build_world


@pytest.fixture
def world(user, catalog) -> World:
    return build_world(user)
