"""Schemathesis fuzzing of every documented operation, in-process through the WSGI app, against the served schema.

Each operation is one test. The account of `tests/schema/world.py` is built once per operation (pytest-django's
function-scoped `db`: every example of that operation shares one rolled-back transaction), path parameters name
those real objects part of the time, and every answer must be a declared status, with a declared media type and a
body that matches its schema, and never a 5xx. Examples are bounded and derandomized: CI sends the same requests
on every run.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from nodeclusters.catalog import CATALOG
from tests.schema.world import World

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Answers that show a request reached an existing object.
FOUND_STATUSES = {200, 202, 409}

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())

# The current test's objects by resource (`nodecluster`, `node`, `action`), filled by the `fuzz_headers` fixture;
# the answers it got, checked when the test ends.
EXISTING: dict[str, list[str]] = {}
ANSWERS: list[tuple[str, int]] = []

CATALOG_PATH_PARAMS = {
    "/api/v1/provider/{name}/": [{"name": provider} for provider in CATALOG],
    "/api/v1/region/{provider}/{name}/": [
        {"provider": provider, "name": region} for provider, (_, regions, _) in CATALOG.items() for region in regions
    ],
    "/api/v1/az/{provider}/{region}/{name}/": [
        {"provider": provider, "region": region, "name": zone}
        for provider, (_, regions, _) in CATALOG.items()
        for region, (_, zones) in regions.items()
        for zone in zones
    ],
    "/api/v1/nodetype/{provider}/{name}/": [
        {"provider": provider, "name": node_type} for provider, (_, _, types) in CATALOG.items() for node_type in types
    ],
}
VALID_UPDATES = {
    ("PATCH", "/api/v1/nodecluster/{uuid}/"): [{"nickname": "fuzzed"}, {"tags": [{"name": "fuzz"}]}],
    ("PATCH", "/api/v1/node/{uuid}/"): [{"nickname": "fuzzed"}, {"tags": [{"name": "fuzz"}]}],
}
VALID_REFERENCES = [
    {"region": "/api/v1/region/digitalocean/lon1/", "node_type": "/api/v1/nodetype/digitalocean/1gb/"},
    {"region": "/api/v1/region/aws/us-east-1/", "node_type": "/api/v1/nodetype/aws/t2.micro/"},
]


def resource_of(path: str) -> str:
    return path.split("/")[3]  # /api/v1/<resource>/...


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, name an object that exists: a random uuid alone would only ever be a 404."""
    path = context.operation.path
    if not path_parameters:
        return st.just(path_parameters)
    if path in CATALOG_PATH_PARAMS:
        real = CATALOG_PATH_PARAMS[path]
    elif "uuid" in path_parameters and EXISTING.get(resource_of(path)):
        real = [{"uuid": uuid} for uuid in EXISTING[resource_of(path)]]
    else:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.sampled_from(real))


@schema.hook
def flatmap_body(context, body):
    """Creates get a valid region and node type some of the time, and updates a valid field, so the rest of the
    fuzzed body reaches the service instead of stopping at the first invalid value."""
    operation = context.operation
    key = (operation.method.upper(), operation.path)
    if key == ("POST", "/api/v1/nodecluster/") and isinstance(body, dict):
        return st.one_of(
            st.just(body), st.sampled_from(VALID_REFERENCES).map(lambda references: {**body, **references})
        )
    if key in VALID_UPDATES:
        return st.one_of(st.just(body), st.sampled_from(VALID_UPDATES[key]))
    return st.just(body)


@pytest.fixture
def requests_keep_the_test_transaction():
    """Django closes the connection around every WSGI request (`close_old_connections`); inside a test's
    transaction that would end it, so the signal is off for the test, as Django's own test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def existing_objects(world: World) -> dict[str, list[str]]:
    clusters = [world.init, world.deployed, world.aws, world.terminated]
    nodes = [world.node, world.spare_node, world.zone_node, world.booting_node, world.dead_node, world.loose_node]
    return {
        "nodecluster": [str(cluster.uuid) for cluster in clusters],
        "node": [str(node.uuid) for node in nodes],
        "action": [str(world.open_action.uuid), str(world.finished_action.uuid)],
    }


@pytest.fixture
def fuzz_headers(user, api_key, world, requests_keep_the_test_transaction):
    """A valid API key; afterwards, checks that per-object operations did reach existing objects."""
    EXISTING.update(existing_objects(world))
    ANSWERS.clear()
    yield {"Authorization": f"ApiKey {user.username}:{api_key}"}
    EXISTING.clear()
    per_object = [status for path, status in ANSWERS if "{uuid}" in path]
    if per_object and not FOUND_STATUSES & set(per_object):
        pytest.fail(f"no fuzzed request reached an existing object (statuses: {sorted(set(per_object))})")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        # The account is built once per operation on purpose; the examples share it (and its transaction).
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_operation_survives_fuzzing(case, fuzz_headers):
    response = case.call_and_validate(headers=fuzz_headers, checks=CHECKS)
    if case.method.upper() == case.operation.method.upper():  # not one of schemathesis' wrong-method probes
        ANSWERS.append((case.operation.path, response.status_code))
