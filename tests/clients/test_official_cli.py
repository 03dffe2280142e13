"""Tutum's official CLI (`tutum` 0.21.1 from PyPI, unmodified, on Python 2.7) against a live `make run` stack.

Each test runs the commands a user would type and checks what they would notice (exit code, the names, uuids and
states printed), then the server's state behind them over HTTP. Identifiers are given as a name, a short uuid and
a long uuid, as the CLI allows; `--sync` waits for the action (polling it every 4 s).
"""

import json
import time

import pytest

from tests.clients.conftest import (
    CONVERGE_SECONDS,
    NODE_TYPE,
    PROVIDER,
    REGION,
    printed_events,
    require_stream_host,
    short,
    table_rows,
    unique_name,
)

# `make run`'s own stack (SQLite, embedded broker): the PostgreSQL pass of `make test` leaves it out.
pytestmark = pytest.mark.stack

#: `--sync` polls every 4 s: a deploy, scale or termination of the simulated cloud is seen done by the second poll.
SYNC_TIMEOUT = CONVERGE_SECONDS + 10


def assert_ok(result, command: str) -> None:
    assert result.code == 0, (
        f"`tutum {command}` exited {result.code}\n--- stdout\n{result.out}\n--- stderr\n{result.err}"
    )


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


@pytest.fixture(scope="module")
def deployed_cluster(api) -> dict:
    """A cluster of one node created and deployed over HTTP, for the read-only commands."""
    cluster, _ = api.create_cluster(unique_name("cli-read"), target_num_nodes=1)
    return api.wait_for_cluster(cluster["uuid"], "Deployed")


def test_catalog_commands_list_the_seeded_catalog(tutum, api):
    result = tutum("nodecluster", "provider")
    assert_ok(result, "nodecluster provider")
    providers = {row[0]: row[1] for row in table_rows(result.out)}
    assert providers == {provider["name"]: provider["label"] for provider in api.get("/api/v1/provider/")["objects"]}
    assert providers["digitalocean"] == "Digital Ocean"

    result = tutum("nodecluster", "region", "-p", PROVIDER)
    assert_ok(result, "nodecluster region")
    regions = {row[0]: row for row in table_rows(result.out)}
    served = api.get("/api/v1/region/", provider=f"/api/v1/provider/{PROVIDER}/", limit=100)["objects"]
    assert set(regions) == {region["name"] for region in served}
    assert regions[REGION] == [REGION, "London 1", PROVIDER]

    result = tutum("nodecluster", "nodetype", "-p", PROVIDER, "-r", REGION)
    assert_ok(result, "nodecluster nodetype")
    node_types = {row[0]: row for row in table_rows(result.out)}
    assert node_types[NODE_TYPE][1:3] == ["1GB", PROVIDER]
    assert REGION in node_types[NODE_TYPE][3].split(", ")
    assert "t2.micro" not in node_types  # another provider's type

    result = tutum("nodecluster", "az")
    assert_ok(result, "nodecluster az")
    zones = {row[0]: row for row in table_rows(result.out)}
    assert zones["us-east-1a"] == ["us-east-1a", "Yes", "/api/v1/az/aws/us-east-1/us-east-1a/"]
    assert set(zones) == {zone["name"] for zone in api.get("/api/v1/az/", limit=1000)["objects"]}


def test_create_with_sync_returns_once_the_cluster_is_deployed(tutum, api):
    name = unique_name("cli-sync")
    result = tutum(
        "nodecluster", "create", "--sync", "-t", "2", name, PROVIDER, REGION, NODE_TYPE, timeout=SYNC_TIMEOUT
    )

    assert_ok(result, "nodecluster create --sync")
    cluster_uuid = last_line(result.out)
    lines = [line.strip(".") for line in result.out.split()]
    assert "Success" in lines, result.out
    # Nothing left to wait for once the command has returned.
    cluster = api.cluster(cluster_uuid)
    assert (cluster["name"], cluster["state"], cluster["target_num_nodes"], cluster["current_num_nodes"]) == (
        name,
        "Deployed",
        2,
        2,
    )
    assert cluster["region"] == f"/api/v1/region/{PROVIDER}/{REGION}/"
    assert cluster["node_type"] == f"/api/v1/nodetype/{PROVIDER}/{NODE_TYPE}/"
    assert [node["state"] for node in api.live_nodes(cluster_uuid)] == ["Deployed", "Deployed"]
    actions = {action["action"]: action["state"] for action in api.actions(cluster_uuid)}
    assert actions == {"Node Cluster Create": "Success", "Node Cluster Deploy": "Success"}


def test_create_without_sync_returns_at_once_and_the_cluster_deploys(tutum, api):
    name = unique_name("cli-async")
    result = tutum("nodecluster", "create", name, PROVIDER, REGION, NODE_TYPE)

    assert_ok(result, "nodecluster create")
    cluster_uuid = result.out.strip()
    assert len(cluster_uuid) == 36, result.out  # only the uuid: the command did not wait
    cluster = api.cluster(cluster_uuid)
    assert cluster["name"] == name
    assert cluster["target_num_nodes"] == 1  # the CLI's default
    assert cluster["state"] in ("Deploying", "Deployed")
    cluster = api.wait_for_cluster(cluster_uuid, "Deployed")
    assert cluster["current_num_nodes"] == 1


def test_list_shows_each_cluster_with_its_short_uuid_and_state(tutum, api, deployed_cluster):
    result = tutum("nodecluster", "list")

    assert_ok(result, "nodecluster list")
    assert result.out.split()[:8] == [
        "NAME",
        "UUID",
        "REGION",
        "TYPE",
        "DEPLOYED",
        "STATUS",
        "CURRENT#NODES",
        "TARGET#NODES",
    ]
    rows = {row[0]: row for row in table_rows(result.out)}
    row = rows[deployed_cluster["name"]]
    assert row[1:4] == [short(deployed_cluster["uuid"]), "London 1", "1GB"]
    assert row[-3:] == ["Deployed", "1", "1"]

    result = tutum("nodecluster", "list", "-q")
    assert_ok(result, "nodecluster list -q")
    assert deployed_cluster["uuid"] in result.out.split()


@pytest.mark.parametrize("form", ["name", "short uuid", "long uuid"])
def test_inspect_scale_upgrade_and_rm_by_identifier(tutum, api, form):
    """By name every command waits (`--sync`); by uuid it returns at once and the test waits on the server."""
    cluster, _ = api.create_cluster(unique_name("cli-by-" + form.split()[0]), target_num_nodes=1)
    cluster_uuid = cluster["uuid"]
    api.wait_for_cluster(cluster_uuid, "Deployed")
    identifier = {"name": cluster["name"], "short uuid": short(cluster_uuid), "long uuid": cluster_uuid}[form]
    sync = ["--sync"] if form == "name" else []

    result = tutum("nodecluster", "inspect", identifier)
    assert_ok(result, f"nodecluster inspect {identifier}")
    inspected = json.loads(result.out)
    assert (inspected["uuid"], inspected["name"], inspected["state"]) == (cluster_uuid, cluster["name"], "Deployed")

    result = tutum("nodecluster", "scale", identifier, "2", *sync, timeout=SYNC_TIMEOUT)
    assert_ok(result, f"nodecluster scale {identifier} 2")
    assert last_line(result.out) == cluster_uuid
    assert api.cluster(cluster_uuid)["target_num_nodes"] == 2
    if sync:
        assert "Success" in result.out, result.out
        cluster = api.cluster(cluster_uuid)
    else:
        cluster = api.wait_for_cluster(cluster_uuid, "Deployed")
    assert (cluster["state"], cluster["current_num_nodes"]) == ("Deployed", 2)
    nodes = api.live_nodes(cluster_uuid)
    assert [node["state"] for node in nodes] == ["Deployed", "Deployed"]
    versions_before = {node["uuid"]: node["docker_version"] for node in nodes}

    result = tutum("nodecluster", "upgrade", identifier, *sync, timeout=SYNC_TIMEOUT)
    assert_ok(result, f"nodecluster upgrade {identifier}")
    assert last_line(result.out) == cluster_uuid

    def upgraded():
        actions = [action for action in api.actions(cluster_uuid) if action["action"] == "Node Cluster Docker Upgrade"]
        nodes = api.live_nodes(cluster_uuid)
        done = actions and actions[0]["state"] == "Success" and all(node["state"] == "Deployed" for node in nodes)
        return nodes if done else None

    if sync:
        assert "Success" in result.out, result.out
        nodes = upgraded()
        assert nodes, "`--sync` returned before the upgrade ended"
    else:
        nodes = api.wait_until(upgraded, what="the Docker upgrade to end")
    assert {node["uuid"] for node in nodes} == set(versions_before)
    assert all(node["docker_version"] != versions_before[node["uuid"]] for node in nodes), nodes

    result = tutum("nodecluster", "rm", identifier, *sync, timeout=SYNC_TIMEOUT)
    assert_ok(result, f"nodecluster rm {identifier}")
    assert last_line(result.out) == cluster_uuid
    if sync:
        assert "Success" in result.out, result.out
        cluster = api.cluster(cluster_uuid)
    else:
        cluster = api.wait_for_cluster(cluster_uuid, "Terminated")
    assert cluster["state"] == "Terminated"
    assert cluster["destroyed_datetime"]
    assert {node["state"] for node in api.nodes(cluster_uuid)} == {"Terminated"}


def test_node_list_and_inspect(tutum, api, deployed_cluster):
    (node,) = api.live_nodes(deployed_cluster["uuid"])

    result = tutum("node", "list")
    assert_ok(result, "node list")
    rows = {row[0]: row for row in table_rows(result.out)}
    row = rows[short(node["uuid"])]
    assert row[1] == node["external_fqdn"]
    assert "\u25b6 Deployed" in row  # the CLI's symbol for a running state
    assert row[-2:] == [deployed_cluster["name"], node["docker_version"]]

    result = tutum("node", "list", "-q")
    assert_ok(result, "node list -q")
    assert node["uuid"] in result.out.split()

    for identifier in (short(node["uuid"]), node["uuid"]):
        result = tutum("node", "inspect", identifier)
        assert_ok(result, f"node inspect {identifier}")
        inspected = json.loads(result.out)
        assert inspected["uuid"] == node["uuid"]
        assert inspected["node_cluster"] == deployed_cluster["resource_uri"]
        assert inspected["state"] == "Deployed"


def _deploy_action(api, cluster: dict) -> dict:
    (action,) = [action for action in api.actions(cluster["uuid"]) if action["action"] == "Node Cluster Deploy"]
    return action


def test_action_list_shows_the_deploy(tutum, api, deployed_cluster):
    deploy = _deploy_action(api, deployed_cluster)

    result = tutum("action", "list")

    assert_ok(result, "action list")
    rows = [row for row in table_rows(result.out) if deployed_cluster["uuid"] in row]
    assert {row[0]: row[1] for row in rows}[short(deploy["uuid"])] == "Node Cluster Deploy"
    assert "Node Cluster Create" in {row[1] for row in rows}

    result = tutum("action", "list", "-q")
    assert_ok(result, "action list -q")
    assert deploy["uuid"] in result.out.split()


def test_action_inspect_by_short_uuid(tutum, api, deployed_cluster):
    deploy = _deploy_action(api, deployed_cluster)

    result = tutum("action", "inspect", short(deploy["uuid"]))

    assert_ok(result, f"action inspect {short(deploy['uuid'])}")
    inspected = json.loads(result.out)
    assert inspected["uuid"] == deploy["uuid"]
    assert (inspected["action"], inspected["state"]) == ("Node Cluster Deploy", "Success")
    assert inspected["object"] == deployed_cluster["resource_uri"]


def test_action_logs_prints_the_finished_deploys_log(tutum, api, stack, deployed_cluster):
    require_stream_host(stack)
    deploy = _deploy_action(api, deployed_cluster)
    (node,) = api.live_nodes(deployed_cluster["uuid"])

    result = tutum("action", "logs", short(deploy["uuid"]), timeout=30)

    assert_ok(result, f"action logs {short(deploy['uuid'])}")
    assert "Traceback" not in result.err, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) >= 2, result.out
    # One line per node step, naming the node.
    assert any(node["uuid"] in line for line in lines), result.out


def test_action_logs_follow_streams_until_the_action_ends(tutum, api, stack):
    require_stream_host(stack)
    cluster, action_uri = api.create_cluster(unique_name("cli-follow"), target_num_nodes=2)
    action_uuid = action_uri.rstrip("/").rsplit("/", 1)[-1]

    result = tutum("action", "logs", "-f", short(action_uuid), timeout=CONVERGE_SECONDS + 10)

    # The command ended by itself: the server closed the stream when the deploy ended, and not before.
    assert_ok(result, f"action logs -f {short(action_uuid)}")
    assert api.get(action_uri)["state"] == "Success"
    nodes = api.live_nodes(cluster["uuid"])
    assert len(nodes) == 2
    for node in nodes:
        assert node["uuid"] in result.out, result.out


def _events_for(output: str, **fields) -> list[dict]:
    return [event for event in printed_events(output) if all(event.get(key) == value for key, value in fields.items())]


def test_event_shows_a_deploy_and_a_scale_as_they_happen(tutum, api, stack, cli_dir, background):
    require_stream_host(stack)
    probe, _ = api.create_cluster(unique_name("cli-probe"), deploy=False)
    watcher = background([str(cli_dir / "bin" / "tutum"), "event"], pythonpath=cli_dir, name="tutum-event")
    # `tutum event` prints nothing when it connects: a change it shows means it is listening.
    deadline = time.monotonic() + 30
    while not _events_for(watcher.output(), resource_uri=probe["resource_uri"]):
        assert watcher.process.poll() is None, f"`tutum event` exited\n{watcher.describe()}"
        assert time.monotonic() < deadline, f"`tutum event` showed no event of the probe\n{watcher.describe()}"
        api.patch_cluster(probe["uuid"], nickname=f"probe {time.monotonic():.1f}")
        time.sleep(1)

    result = tutum("nodecluster", "create", "-t", "2", unique_name("cli-events"), PROVIDER, REGION, NODE_TYPE)
    assert_ok(result, "nodecluster create")
    cluster_uuid = result.out.strip()
    cluster_uri = f"/api/v1/nodecluster/{cluster_uuid}/"

    def deployed_nodes(output: str) -> set[str]:
        if not _events_for(output, type="nodecluster", resource_uri=cluster_uri, state="Deployed"):
            return set()
        nodes = {event["resource_uri"] for event in _events_for(output, type="node", state="Deployed")}
        nodes &= {event["resource_uri"] for event in _events_for(output, type="node", parents=[cluster_uri])}
        return nodes if len(nodes) == 2 else set()

    nodes = watcher.wait_for(deployed_nodes, timeout=CONVERGE_SECONDS, what="the cluster and its nodes Deployed")
    output = watcher.output()
    assert _events_for(output, type="nodecluster", action="create", resource_uri=cluster_uri, state="Init")
    assert _events_for(output, type="nodecluster", action="update", resource_uri=cluster_uri, state="Deploying")
    for node_uri in nodes:
        assert _events_for(output, type="node", action="create", resource_uri=node_uri, parents=[cluster_uri])
    actions = _events_for(output, type="action", parents=[cluster_uri])
    assert {event["state"] for event in actions} >= {"Success"}, actions

    api.patch_cluster(cluster_uuid, target_num_nodes=1)

    def scaled_in(output: str) -> list[dict]:
        gone = [
            event
            for event in _events_for(output, type="node", parents=[cluster_uri])
            if event["state"] == "Terminated" or event["action"] == "delete"
        ]
        back = _events_for(output, type="nodecluster", resource_uri=cluster_uri, state="Deployed")
        scaling = _events_for(output, type="nodecluster", resource_uri=cluster_uri, state="Scaling")
        return gone if scaling and len(back) >= 2 else []

    (gone,) = {event["resource_uri"] for event in watcher.wait_for(scaled_in, timeout=CONVERGE_SECONDS, what="a scale")}
    assert gone in nodes
    assert watcher.stop() == 0  # Ctrl-C ends it cleanly
