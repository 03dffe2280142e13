"""python-tutum 0.21.2 (PyPI, unmodified, Python 2.7): `tutum.TutumEvents` on a live `make run` stack's Stream API.

A small Python 2.7 program subscribes with TutumEvents' handlers and prints every event as a JSON line; the test
deploys a cluster over HTTP and reads what the program printed, as a user's script would see it.
"""

import pytest

from tests.clients.conftest import CONVERGE_SECONDS, json_lines, require_stream_host, unique_name

# `make run`'s own stack (SQLite, embedded broker): the PostgreSQL pass of `make test` leaves it out.
pytestmark = pytest.mark.stack

#: Python 2.7. Each event as one JSON line; the handlers' own calls as lines with a "client" key.
EVENTS_SCRIPT = """\
from __future__ import print_function
import json
import sys

import tutum


def emit(value):
    print(json.dumps(value))
    sys.stdout.flush()


events = tutum.TutumEvents()
events.on_open(lambda: emit({"client": "open"}))
events.on_message(emit)
events.on_error(lambda error: emit({"client": "error", "error": repr(error)}))
events.on_close(lambda: emit({"client": "close"}))
try:
    events.run_forever()
except tutum.TutumAuthError as error:
    emit({"client": "auth_error", "error": str(error)})
    sys.exit(2)
"""
EVENT_KEYS = {"type", "action", "parents", "resource_uri", "state"}


@pytest.fixture
def events_script(tmp_path):
    path = tmp_path / "print_events.py"
    path.write_text(EVENTS_SCRIPT)
    return path


def _client_calls(output: str, call: str) -> list[dict]:
    return [line for line in json_lines(output) if line.get("client") == call]


def _events(output: str, **fields) -> list[dict]:
    return [
        line
        for line in json_lines(output)
        if "client" not in line and all(line.get(key) == value for key, value in fields.items())
    ]


def test_tutum_events_receives_a_deploy_of_the_cluster_and_its_nodes(sdk_dir, api, stack, background, events_script):
    require_stream_host(stack)
    listener = background([str(events_script)], pythonpath=sdk_dir, name="tutum-events")
    listener.wait_for(lambda output: _client_calls(output, "open"), timeout=30, what="TutumEvents to connect")

    cluster, deploy_uri = api.create_cluster(unique_name("sdk-events"), target_num_nodes=2)
    cluster_uri = cluster["resource_uri"]

    def deployed_nodes(output: str) -> set[str]:
        if not _events(output, type="nodecluster", resource_uri=cluster_uri, state="Deployed"):
            return set()
        nodes = {event["resource_uri"] for event in _events(output, type="node", parents=[cluster_uri])}
        nodes &= {event["resource_uri"] for event in _events(output, type="node", state="Deployed")}
        return nodes if len(nodes) == 2 else set()

    nodes = listener.wait_for(deployed_nodes, timeout=CONVERGE_SECONDS, what="the cluster and both nodes Deployed")
    output = listener.output()
    assert nodes == {node["resource_uri"] for node in api.live_nodes(cluster["uuid"])}
    for event in _events(output):
        assert set(event) >= EVENT_KEYS, event

    # The cluster: created (Init), then deploying, then deployed; a cluster has no parents.
    cluster_events = _events(output, type="nodecluster", resource_uri=cluster_uri)
    assert (cluster_events[0]["action"], cluster_events[0]["state"]) == ("create", "Init"), cluster_events
    assert {"Deploying", "Deployed"} <= {event["state"] for event in cluster_events if event["action"] == "update"}
    assert all(event["parents"] == [] for event in cluster_events), cluster_events

    # Each node: created by the deploy, then updated to Deployed; its parent is its cluster.
    for node_uri in nodes:
        node_events = _events(output, type="node", resource_uri=node_uri)
        assert node_events[0]["action"] == "create", node_events
        assert ("update", "Deployed") in {(event["action"], event["state"]) for event in node_events}, node_events
        assert all(event["parents"] == [cluster_uri] for event in node_events), node_events

    # The actions: the create (synchronous) and the deploy, which ends Success; an action's parent is its object.
    action_events = _events(output, type="action", parents=[cluster_uri])
    deploy_events = [event for event in action_events if event["resource_uri"] == deploy_uri]
    assert deploy_events[0]["action"] == "create", deploy_events
    assert deploy_events[-1]["state"] == "Success", deploy_events
    assert len({event["resource_uri"] for event in action_events}) == 2, action_events

    listener.stop()


def test_bad_credentials_end_tutum_events_with_its_auth_error(sdk_dir, stack, background, events_script):
    require_stream_host(stack)
    listener = background(
        [str(events_script)], pythonpath=sdk_dir, name="bad-credentials", TUTUM_APIKEY="0123456789" * 4
    )

    code = listener.wait(timeout=20)

    connections = len(_client_calls(listener.output(), "open"))
    assert code is not None, (
        f"TutumEvents still running after 20 s ({connections} connection(s) opened): a refused upgrade makes "
        f"python-tutum reconnect forever; the server must accept, send the UNAUTHORIZED error and close\n"
        f"{listener.describe()}"
    )
    assert code == 2, listener.describe()
    assert _client_calls(listener.output(), "auth_error") == [{"client": "auth_error", "error": "Not authorized"}]
    assert connections == 1, listener.describe()
    assert not _events(listener.output()), listener.describe()
