"""The Python examples of Tutum's API reference (/work/shared/reference/tutum-api/*.md) run against a live stack
with the new client, as a user would run them after `pip install ./client`.

Each example runs in its own Python 3 process with the banner's exports and nothing else changed, except:
- the reference's example uuid (7eaf7fff-...) becomes a real object of the right kind;
- the two examples that print with Python 2's `print x` statement (action logs, Tutum events) get `print(x)`: a
  print statement is a SyntaxError in any Python 3, before the client is even imported;
- the Stream API example of "Introduction and auth" is not run: it is websocket-client code, not the client's,
  with undefined `username` and `password`.
A small harness runs the example's code unchanged with `exec` and then prints its variables as JSON, so each
test checks what the example got as well as the server's state behind it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clients.conftest import client_env, printed_events, unique_name

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "tutum-api"
EXAMPLE_UUID = "7eaf7fff-882c-4f3d-9a8f-a22317ac00ce"
PRINT_STATEMENT = re.compile(r"^(\s*)print (.+)$", re.M)
#: Runs an example unchanged, then prints its variables (API objects as their JSON) on a last line.
HARNESS = """\
import json, sys
source = open(sys.argv[1]).read()
namespace = {"__name__": "__main__"}
exec(compile(source, sys.argv[1], "exec"), namespace)
import tutum

def describe(value):
    if isinstance(value, list):
        return [describe(item) for item in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)

found = {name: describe(value) for name, value in namespace.items()
         if not name.startswith("__") and not callable(value) and type(value).__name__ != "module"}
found["tutum.user"], found["tutum.apikey"] = tutum.user, tutum.apikey
print(json.dumps(found))
"""

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference is not beside this checkout")


def examples(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REFERENCE / page).read_text(), re.S)


def as_python3(code: str) -> str:
    return PRINT_STATEMENT.sub(r"\1print(\2)", code)


@pytest.fixture(scope="module")
def run_example(stack, installed_client, tmp_path_factory, client_home):
    """`run_example(code, uuid=...)` -> (namespace as JSON, the example's own output)."""
    directory = tmp_path_factory.mktemp("examples")
    harness = directory / "harness.py"
    harness.write_text(HARNESS)

    def run(code: str, *, uuid: str | None = None, timeout: float = 60) -> tuple[dict, str]:
        if uuid:
            code = code.replace(EXAMPLE_UUID, uuid)
        script = directory / f"example-{time.monotonic_ns()}.py"
        script.write_text(as_python3(code))
        answer = subprocess.run(
            [sys.executable, str(harness), str(script)],
            env=client_env(stack, installed_client, client_home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert answer.returncode == 0, (
            f"example failed:\n{code}\n--- stdout\n{answer.stdout}\n--- stderr\n{answer.stderr}"
        )
        *printed, last = answer.stdout.strip().splitlines()
        return json.loads(last), "\n".join(printed)

    return run


def test_every_python_example_of_the_reference_is_run_here():
    pages = sorted(path.name for path in REFERENCE.glob("*.md"))
    blocks = {page: examples(page) for page in pages}
    assert sum(len(found) for found in blocks.values()) == 27
    # Only these two need Python 3's print; only the raw websocket one is not the client's.
    assert [page for page, found in blocks.items() for code in found if PRINT_STATEMENT.search(code)] == [
        "action.md",
        "tutum-events.md",
    ]
    assert [code for code in blocks["introduction-and-auth.md"] if "import websocket" in code] == [
        blocks["introduction-and-auth.md"][1]
    ]


def test_introduction_sets_the_credentials(run_example):
    (code, _websocket_client_code) = examples("introduction-and-auth.md")
    found, _ = run_example(code)
    assert (found["tutum.user"], found["tutum.apikey"]) == ("username", "apikey")


@pytest.mark.parametrize(
    ("page", "name", "expected"),
    [
        ("provider.md", "provider", "/api/v1/provider/digitalocean/"),
        ("region.md", "region", "/api/v1/region/digitalocean/lon1/"),
        ("nodetype.md", "nodetype", "/api/v1/nodetype/digitalocean/1gb/"),
        ("availabilityzone.md", "az", "/api/v1/az/aws/sa-east-1/sa-east-1a/"),
    ],
)
def test_catalog_examples_list_and_fetch(run_example, api, page, name, expected):
    listing, fetching = examples(page)
    plural = {"provider": "providers", "region": "regions", "nodetype": "nodetypes", "az": "az"}[name]
    resource = expected.split("/")[3]

    found, _ = run_example(listing)
    served = api.get(f"/api/v1/{resource}/", limit=1000)["objects"]
    assert [item["resource_uri"] for item in found[plural]] == [item["resource_uri"] for item in served]

    found, _ = run_example(fetching)
    assert found[name]["resource_uri"] == expected


def test_nodecluster_examples_create_deploy_update_and_terminate(run_example, api):
    listing, create, get, deploy, update, terminate = examples("nodecluster.md")

    found, _ = run_example(listing)
    assert isinstance(found["nodeclusters"], list)

    found, _ = run_example(create)
    cluster = found["nodecluster"]
    assert (cluster["name"], cluster["state"], cluster["disk"]) == ("my_cluster", "Init", 60)
    assert cluster["node_type"] == "/api/v1/nodetype/digitalocean/1gb/"
    uuid = cluster["uuid"]
    assert api.cluster(uuid)["state"] == "Init"

    found, _ = run_example(get, uuid=uuid)
    assert found["service"]["uuid"] == uuid  # the reference names this variable `service`

    found, _ = run_example(deploy, uuid=uuid)
    assert found["nodecluster"]["state"] == "Deploying"
    assert api.get(found["nodecluster"]["tutum_action_uri"])["action"] == "Node Cluster Deploy"

    found, _ = run_example(update, uuid=uuid)
    behind = api.cluster(uuid)
    assert (behind["target_num_nodes"], behind["tags"]) == (3, [{"name": "tag-1"}])
    assert found["nodecluster"]["tags"] == [{"name": "tag-1"}]
    api.wait_for_cluster(uuid, "Deployed")
    assert api.cluster(uuid)["current_num_nodes"] == 3

    found, _ = run_example(terminate, uuid=uuid)
    assert found["nodecluster"]["state"] == "Terminating"
    api.wait_for_cluster(uuid, "Terminated")


def test_node_examples_list_fetch_retag_upgrade_and_terminate(run_example, api):
    listing, get, update, upgrade, terminate = examples("node.md")
    cluster, _ = api.create_cluster(unique_name("ref-node"), target_num_nodes=1)
    api.wait_for_cluster(cluster["uuid"], "Deployed")
    (node,) = api.live_nodes(cluster["uuid"])

    found, _ = run_example(listing)
    assert node["uuid"] in {item["uuid"] for item in found["nodes"]}

    found, _ = run_example(get, uuid=node["uuid"])
    assert found["node"]["external_fqdn"] == node["external_fqdn"]

    run_example(update, uuid=node["uuid"])
    assert api.get(node["resource_uri"])["tags"] == [{"name": "tag-1"}]

    found, _ = run_example(upgrade, uuid=node["uuid"])
    assert found["node"]["state"] == "Upgrading"
    api.wait_until(lambda: api.get(node["resource_uri"])["state"] == "Deployed", what="the upgraded node")
    assert api.get(node["resource_uri"])["docker_version"] != node["docker_version"]

    found, _ = run_example(terminate, uuid=node["uuid"])
    assert found["node"]["state"] in ("Terminating", "Terminated")
    api.wait_until(lambda: api.get(node["resource_uri"])["state"] == "Terminated", what="the node terminated")


def test_action_examples_list_fetch_logs_cancel_and_retry(run_example, api):
    listing, get, logs, cancel, retry = examples("action.md")
    cluster, deploy_uri = api.create_cluster(unique_name("ref-action"), target_num_nodes=2)
    api.wait_for_cluster(cluster["uuid"], "Deployed")
    deploy_uuid = deploy_uri.rstrip("/").rsplit("/", 1)[-1]

    found, _ = run_example(listing)
    assert deploy_uuid in {action["uuid"] for action in found["actions"]}

    found, _ = run_example(get, uuid=deploy_uuid)
    assert (found["action"]["action"], found["action"]["state"]) == ("Node Cluster Deploy", "Success")

    _, printed = run_example(logs, uuid=deploy_uuid)  # follow=True on an ended action: the tail, then it ends
    lines = [json.loads(line) for line in printed.splitlines()]
    assert lines and all(line["type"] == "log" for line in lines)
    for node in api.live_nodes(cluster["uuid"]):
        assert any(node["uuid"] in line["log"] for line in lines), printed

    found, _ = run_example(retry, uuid=deploy_uuid)
    assert found["action"]["state"] == "In progress"
    api.wait_until(lambda: api.get(deploy_uri)["state"] == "Success", what="the retried deploy")

    big, running_uri = api.create_cluster(unique_name("ref-cancel"), target_num_nodes=20)
    found, _ = run_example(cancel, uuid=running_uri.rstrip("/").rsplit("/", 1)[-1])
    assert found["action"]["state"] == "Canceling"
    api.wait_until(lambda: api.get(running_uri)["state"] == "Canceled", what="the deploy canceled")
    assert api.cluster(big["uuid"])["target_num_nodes"] < 20


def test_events_example_prints_each_event(api, stack, installed_client, background, tmp_path):
    (code,) = examples("tutum-events.md")
    script = tmp_path / "events_example.py"
    script.write_text(as_python3(code))
    probe, _ = api.create_cluster(unique_name("ref-events"), deploy=False)
    listener = background([str(script)], pythonpath=installed_client, name="events-example")

    deadline = time.monotonic() + 30
    while True:  # it prints nothing when it connects: a change it prints means it is listening
        mine = [
            event for event in printed_events(listener.output()) if event.get("resource_uri") == probe["resource_uri"]
        ]
        if mine:
            break
        assert listener.process.poll() is None, f"the example exited\n{listener.describe()}"
        assert time.monotonic() < deadline, f"the example printed no event of the probe\n{listener.describe()}"
        api.patch_cluster(probe["uuid"], nickname=f"probe {time.monotonic():.1f}")
        time.sleep(1)

    assert {"type", "action", "parents", "resource_uri", "state"} <= set(mine[0])
    assert mine[0]["type"] == "nodecluster"
