"""Schemathesis fuzzing of every documented operation, in-process through the WSGI app, against the served schema.

Every check Schemathesis has runs on every answer (the CLI's `--checks all`): no 5xx; a declared status, media
type, headers and body; schema-valid requests accepted (`positive_data_acceptance`) and schema-invalid ones refused
(`negative_data_rejection`), so the document states every constraint the server enforces; credentials enforced;
and, along links, created objects reachable (`ensure_resource_availability`). One exception: `use_after_free`
expects a DELETE to make the object a 404, but Tutum's DELETE terminates a cluster or node, which stays readable
(Terminating, then Terminated, with its `destroyed_datetime`); `terminated_objects_stay_terminated` checks that
instead.

Two tests, each on the account of `tests/schema/world.py` (pytest-django's function-scoped `db`: the examples of one
test share one rolled-back transaction):
- one per operation: the examples, coverage and fuzzing phases; path parameters name its real objects part of
  the time, and the operation must reach one at least once;
- the stateful one: Schemathesis' state machine follows the document's OpenAPI links from one answer to the next
  (create a cluster, deploy, scale, upgrade and terminate it, read and cancel the actions those record, walk from a
  list to its objects) and must reach real clusters, nodes and actions that way; each scenario starts from the
  same account (a savepoint rolled back after it).

Size and seed come from the environment: FUZZ_EXAMPLES examples per operation and four times as many stateful
scenarios (default 25: both tests take about a minute), FUZZ_SEED a number (default 1: CI sends the same requests
on every run) or `random` (a fresh one, printed with a failure so it can be replayed with FUZZ_SEED=<it>).
`make fuzz` is the nightly size: more examples, a random seed.
"""

import os
import random
import re
from collections import defaultdict

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, is_check_class, load_all_checks

from nodeclusters.catalog import CATALOG
from nodeclusters.wire.grammar import UUID_REGEX
from tests.schema.world import World

pytestmark = pytest.mark.django_db


def _seed() -> int:
    value = os.environ.get("FUZZ_SEED", "1")
    return random.SystemRandom().randrange(2**32) if value == "random" else int(value)


MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = _seed()
# Stateful scenarios, each of at most STATEFUL_STEPS calls (create -> deploy -> scale -> an action -> terminate,
# and back): a scenario is one root (a create or a list) and what its links lead to, so it takes more of them.
STATEFUL_SCENARIOS = 4 * MAX_EXAMPLES
STATEFUL_STEPS = 10

load_all_checks()
TERMINAL_STATES = {"Terminating", "Terminated"}
# Objects the current test terminated (DELETE answered 2xx), by uuid.
TERMINATED: set[str] = set()


def terminated_objects_stay_terminated(ctx, response, case):
    """After DELETE, the cluster or node is still answered, but Terminating or Terminated (Tutum's terminate)."""
    uuid = (case.path_parameters or {}).get("uuid")
    if uuid is None or "/action/" in case.operation.path:
        return None
    if (case.query or {}).get("dry_run") == "true":
        return None  # a dry run's 200 shows the plan; nothing was terminated
    if case.method.upper() == "DELETE" and 200 <= response.status_code < 300:
        TERMINATED.add(uuid.replace("-", "").lower())
    elif uuid.replace("-", "").lower() in TERMINATED and response.status_code == 200:
        state = response.json().get("state")
        assert state in TERMINAL_STATES, f"{case.operation.label} answered state {state!r} after DELETE"
    return None


#: Every check Schemathesis registers, as `--checks all` runs them, Tutum's terminate in place of use-after-free.
ALL_CHECKS = [
    *(check for check in CHECKS.get_all() if not is_check_class(check) and check.__name__ != "use_after_free"),
    terminated_objects_stay_terminated,
]
# Answers that show a request reached an existing object.
FOUND_STATUSES = {200, 202, 204, 409}
HYPOTHESIS_SETTINGS = {
    "deadline": None,
    "database": None,
    "print_blob": False,
    "suppress_health_check": [
        # The account is built once per test on purpose; the examples share it (and its transaction).
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
}

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
schema.config.seed = SEED
# Answers to well-formed requests that depend on what happened before, like a state conflict's 409: If-Match naming
# another version of the object (412; the fuzzer cannot guess an ETag) and an Idempotency-Key already used for another
# request (422; the fuzzer draws the same short keys again).
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "412",
    "422",
]

# The current test's objects by resource (`nodecluster`, `node`, `action`), filled by the `fuzz_headers` fixture;
# the answers it got (per-object operation -> statuses), checked when the test ends.
EXISTING: dict[str, list[str]] = {}
ANSWERS: dict[str, list[int]] = defaultdict(list)

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


#: What a valid path parameter is, by name (the document's patterns): a uuid, or else a catalog name.
PATH_PARAMETER_PATTERNS = {"uuid": UUID_REGEX}
CATALOG_NAME_PATTERN = r"[^/\x00]+"


def valid_path_parameters(path_parameters: dict) -> bool:
    return all(
        isinstance(value, str) and re.fullmatch(PATH_PARAMETER_PATTERNS.get(name, CATALOG_NAME_PATTERN), value)
        for name, value in path_parameters.items()
    )


def resource_of(path: str) -> str:
    return path.split("/")[3]  # /api/v1/<resource>/...


#: Body fields whose rules JSON Schema cannot state: a target within the cluster's bounds (`min_num_nodes <=
#: target_num_nodes <= max_num_nodes`, compared across fields and with the bounds stored by earlier requests), and
#: `remove_nodes` naming live members of the cluster. The server refuses a breach with a 400 naming the rule (the
#: issue asks for 400, not 409), so schema-valid values there are not "valid data" the server must accept: they are
#: left out of positive cases (tests/api/test_control.py covers them). Negative cases keep them, so invalid values
#: are still refused.
STATEFUL_BODY_FIELDS = ("min_num_nodes", "max_num_nodes", "remove_nodes")


@schema.hook
def map_case(context, case):
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_positive and isinstance(case.body, dict):
        case.body = {name: value for name, value in case.body.items() if name not in STATEFUL_BODY_FIELDS}
    return case


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, name an object that exists: a random uuid alone would only ever be a 404. Never in place of
    an invalid one: that case tests that the server refuses it (negative data)."""
    path = context.operation.path
    if not path_parameters or not valid_path_parameters(path_parameters):
        return st.just(path_parameters)
    if path in CATALOG_PATH_PARAMS:
        real = CATALOG_PATH_PARAMS[path]
    elif "uuid" in path_parameters and EXISTING.get(resource_of(path)):
        real = [{"uuid": uuid} for uuid in EXISTING[resource_of(path)]]
    else:
        return st.just(path_parameters)
    # The existing objects first: Hypothesis starts from a strategy's first branch, and with a few dozen examples an
    # operation could otherwise draw its real object only with bodies that are refused anyway.
    return st.one_of(st.sampled_from(real), st.just(path_parameters))


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
        "webhook": [str(world.webhook.uuid)],
    }


@pytest.fixture
def fuzz_headers(user, api_key, world, requests_keep_the_test_transaction):
    """A valid API key and the world's objects; afterwards, checks that per-object operations reached some."""
    print(f"fuzzing with {MAX_EXAMPLES} examples, FUZZ_SEED={SEED}")  # shown with a failure, to replay it
    EXISTING.update(existing_objects(world))
    ANSWERS.clear()
    TERMINATED.clear()
    yield {"Authorization": f"ApiKey {user.username}:{api_key}"}
    EXISTING.clear()
    statuses = {status for answers in ANSWERS.values() for status in answers}
    if statuses and not FOUND_STATUSES & statuses:
        pytest.fail(f"no fuzzed request reached an existing object (statuses: {sorted(statuses)})")


def record(case, response) -> None:
    """Note the answer of a per-object operation (not of one of Schemathesis' wrong-method probes)."""
    if "{uuid}" in case.operation.path and case.method.upper() == case.operation.method.upper():
        ANSWERS[f"{case.operation.method.upper()} {case.operation.path}"].append(response.status_code)


def reached(label: str) -> bool:
    return bool(FOUND_STATUSES & set(ANSWERS[label]))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, **HYPOTHESIS_SETTINGS)
def test_every_operation_survives_fuzzing(case, fuzz_headers):
    response = case.call_and_validate(headers=fuzz_headers, checks=ALL_CHECKS)
    record(case, response)


class LinkedWorkflow(schema.as_state_machine()):
    """Schemathesis' state machine over the document's links, with credentials and every check."""

    headers: dict = {}

    def setup(self):
        # Every scenario starts from the same account: what one scenario changed is rolled back after it. Hypothesis
        # replays scenarios, and one that found other objects in place would draw other steps (a flaky strategy).
        super().setup()
        self.savepoint = transaction.savepoint()
        TERMINATED.clear()

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)
        super().teardown()

    def get_call_kwargs(self, case):
        return {"headers": self.headers}

    def after_call(self, response, case):
        super().after_call(response, case)
        record(case, response)

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(
            response, checks=ALL_CHECKS, headers=self.headers, transport_kwargs=kwargs, recorder=self.recorder
        )


RESOURCES = ("nodecluster", "node", "action")


#: Rounds of stateful scenarios at most, each with the next seed: a round that has not yet led to everything below
#: is followed by another (which paths the scenarios take varies with what the suite ran before in the process).
STATEFUL_ROUNDS = 3


def _links_missed() -> list[str]:
    """What the links have not led to yet: a real object of each resource, and a cluster deployed (202)."""
    missed = [
        resource
        for resource in RESOURCES
        if not any(reached(label) for label in ANSWERS if resource_of(label.split(" ")[1]) == resource)
    ]
    if 202 not in ANSWERS["POST /api/v1/nodecluster/{uuid}/deploy/"]:
        missed.append("a deployed cluster")
    return missed


def test_linked_operations_survive_stateful_fuzzing(fuzz_headers):
    EXISTING.clear()  # only links lead to objects here: the path parameter hook offers none
    LinkedWorkflow.headers = fuzz_headers

    # Every round runs every check on every answer; rounds go on only until the links have led to real clusters,
    # nodes and actions and to a cluster in Init (created on the way, or listed) being deployed.
    for round_number in range(STATEFUL_ROUNDS):
        run = hypothesis.seed(SEED + round_number)(LinkedWorkflow)
        run.run(
            settings=settings(
                max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, **HYPOTHESIS_SETTINGS
            )
        )
        if not _links_missed():
            break

    missed = _links_missed()
    assert not missed, f"after {STATEFUL_ROUNDS} rounds, links never led to {missed} (answers: {dict(ANSWERS)})"
