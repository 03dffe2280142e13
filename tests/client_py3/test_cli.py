"""The new `tutum` command against a live stack: what tests/clients' official session does not run, and what is new.

Node rm/upgrade/healthcheck, action cancel/retry/logs -t/list -l, the `-q` and `--tag` options, exit codes,
`--output json|table`, `--sync` with its per-node progress from the event stream (and polling without a stream),
`nodecluster scale --wait`, `--timeout`, `event -o json`. tests/client_py3/test_official_session.py runs the
official CLI's session itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.clients.conftest import CLI_DIR as OFFICIAL_CLI_DIR
from tests.clients.conftest import (
    CONVERGE_SECONDS,
    NODE_TYPE,
    PROVIDER,
    REGION,
    client_env,
    find_python27,
    json_lines,
    short,
    table_rows,
    unavailable,
    unique_name,
)
from tests.clients.test_official_cli import assert_ok, last_line

SYNC_TIMEOUT = CONVERGE_SECONDS + 10


def node_lines(err: str) -> dict[str, list[str]]:
    """`--sync`'s per-node progress as printed off a terminal: "node <short uuid>: <state>" lines on stderr."""
    states: dict[str, list[str]] = {}
    for line in err.splitlines():
        if line.startswith("node ") and ": " in line:
            node, state = line[len("node ") :].split(": ", 1)
            states.setdefault(node, []).append(state)
    return states


def test_version_help_and_usage_errors(tutum):
    result = tutum("--version")
    assert (result.code, result.out.strip()) == (0, "tutum 0.22.0")

    for bare in (["nodecluster"], ["nodecluster", "scale"], ["node", "inspect"], ["action", "logs"]):
        result = tutum(*bare)
        assert result.code == 0, result  # the official CLI shows the help of a bare command
        assert "usage: tutum" in result.out

    result = tutum("nodecluster", "scale", "x", "not-a-number")
    assert result.code == 2
    assert "invalid int value" in result.err


def test_bad_credentials_exit_2_and_say_what_to_set(tutum):
    result = tutum("nodecluster", "list", TUTUM_APIKEY="0123456789" * 4)

    assert result.code == 2
    assert "TUTUM_APIKEY" in result.err
    assert result.out == ""

    result = tutum("event", TUTUM_APIKEY="0123456789" * 4, timeout=20)  # the stream says UNAUTHORIZED: no retry loop
    assert result.code == 2
    assert "TUTUM_APIKEY" in result.err


def test_a_create_the_server_refuses_exits_3_with_its_reason(tutum):
    result = tutum("nodecluster", "create", unique_name("cli-bad"), PROVIDER, "atlantis1", NODE_TYPE)

    assert result.code == 3
    assert "HTTP 400" in result.err, result.err
    assert result.out == ""


def test_an_unknown_identifier_exits_3_after_doing_the_others(tutum, api):
    cluster, _ = api.create_cluster(unique_name("cli-multi"), deploy=False)

    result = tutum("nodecluster", "inspect", "no-such-cluster-x", cluster["name"])

    assert result.code == 3
    assert "Cannot find a node cluster with the identifier 'no-such-cluster-x'" in result.err
    assert json.loads(result.out)["uuid"] == cluster["uuid"]


def test_a_refused_operation_exits_3_with_the_servers_reason(tutum, api):
    cluster, _ = api.create_cluster(unique_name("cli-409"), deploy=False)
    api.http.delete(f"/api/v1/nodecluster/{cluster['uuid']}/")
    api.wait_for_cluster(cluster["uuid"], "Terminated")

    result = tutum("nodecluster", "scale", cluster["uuid"], "3")

    assert result.code == 3
    assert "Terminated" in result.err and "HTTP 409" in result.err, result.err


def test_create_with_tags_and_disk_sync_shows_each_node_deploying_then_deployed(tutum, api):
    name = unique_name("cli-tags")
    result = tutum(
        "nodecluster", "create", "-t", "2", "--tag", "web", "--tag", "db", "--disk", "60", "--sync",
        name, PROVIDER, REGION, NODE_TYPE, timeout=SYNC_TIMEOUT,
    )  # fmt: skip

    assert_ok(result, "nodecluster create --sync")
    assert result.out.split() == ["In", "progress", "Success", last_line(result.out)]
    cluster = api.cluster(last_line(result.out))
    assert (cluster["name"], cluster["state"], cluster["disk"]) == (name, "Deployed", 60)
    assert cluster["tags"] == [{"name": "web"}, {"name": "db"}]
    progress = node_lines(result.err)
    nodes = api.live_nodes(cluster["uuid"])
    assert set(progress) == {short(node["uuid"]) for node in nodes}, result.err
    for states in progress.values():
        assert states[-1] == "Deployed", result.err
    assert "unreachable" not in result.err  # the progress came from the event stream


def test_sync_without_a_stream_polls_and_says_so(tutum, api):
    cluster, _ = api.create_cluster(unique_name("cli-poll"), target_num_nodes=1)
    api.wait_for_cluster(cluster["uuid"], "Deployed")

    result = tutum(
        "nodecluster",
        "scale",
        cluster["name"],
        "2",
        "--sync",
        TUTUM_STREAM_HOST="ws://127.0.0.1:9",
        timeout=SYNC_TIMEOUT,
    )

    assert_ok(result, "nodecluster scale --sync (no stream)")
    assert "is unreachable; polling" in result.err
    assert "Success" in result.out.split()
    assert api.cluster(cluster["uuid"])["current_num_nodes"] == 2


def test_scale_wait_returns_once_the_cluster_has_that_many_nodes(tutum, api):
    cluster, _ = api.create_cluster(unique_name("cli-wait"), target_num_nodes=1)
    api.wait_for_cluster(cluster["uuid"], "Deployed")

    result = tutum("nodecluster", "scale", cluster["name"], "3", "--wait", timeout=SYNC_TIMEOUT)

    assert_ok(result, "nodecluster scale --wait")
    assert last_line(result.out) == cluster["uuid"]
    behind = api.cluster(cluster["uuid"])
    assert (behind["state"], behind["current_num_nodes"], behind["target_num_nodes"]) == ("Deployed", 3, 3)
    assert [node["state"] for node in api.live_nodes(cluster["uuid"])] == ["Deployed"] * 3
    assert len(node_lines(result.err)) == 3

    result = tutum("-o", "json", "nodecluster", "scale", cluster["uuid"][:8], "1", "--wait", timeout=SYNC_TIMEOUT)
    assert_ok(result, "nodecluster scale --wait -o json")
    answer = json.loads(result.out)  # stdout is only the JSON: the states went to stderr
    assert (answer["uuid"], answer["state"], answer["current_num_nodes"]) == (cluster["uuid"], "Deployed", 1)
    assert "Success" in result.err


def test_a_sync_that_runs_out_of_time_exits_3(tutum, api):
    cluster, _ = api.create_cluster(unique_name("cli-timeout"), target_num_nodes=1)
    api.wait_for_cluster(cluster["uuid"], "Deployed")

    started = time.monotonic()
    result = tutum("nodecluster", "scale", cluster["name"], "3", "--sync", "--timeout", "0.2")

    assert result.code == 3, result
    assert "after 0.2 s" in result.err  # booting takes a second: the scale cannot have ended
    assert time.monotonic() - started < 10


@pytest.fixture(scope="module")
def two_nodes(api) -> dict:
    cluster, _ = api.create_cluster(unique_name("cli-nodes"), target_num_nodes=2)
    return api.wait_for_cluster(cluster["uuid"], "Deployed")


def test_node_healthcheck_upgrade_and_rm(tutum, api, two_nodes):
    first, second = api.live_nodes(two_nodes["uuid"])

    result = tutum("node", "healthcheck", short(first["uuid"]))
    assert_ok(result, "node healthcheck")
    assert result.out.strip() == first["uuid"]
    checks = api.get("/api/v1/action/", object=first["resource_uri"])["objects"]
    assert checks[0]["action"] == "Node Health Check"

    result = tutum("node", "upgrade", "--sync", first["uuid"], timeout=SYNC_TIMEOUT)
    assert_ok(result, "node upgrade --sync")
    assert result.out.split()[-2:] == ["Success", first["uuid"]]
    assert node_lines(result.err)[short(first["uuid"])][-1] == "Deployed"
    assert api.get(first["resource_uri"])["docker_version"] != first["docker_version"]

    result = tutum("node", "rm", "--sync", short(second["uuid"]), timeout=SYNC_TIMEOUT)
    assert_ok(result, "node rm --sync")
    assert result.out.split()[-2:] == ["Success", second["uuid"]]
    assert api.get(second["resource_uri"])["state"] == "Terminated"
    assert node_lines(result.err)[short(second["uuid"])][-1] == "Terminated"


def test_json_output_of_the_lists_is_the_apis_objects(tutum, api, two_nodes):
    for args, path in (
        (["nodecluster", "list"], "/api/v1/nodecluster/"),
        (["node", "list"], "/api/v1/node/"),
        (["nodecluster", "provider"], "/api/v1/provider/"),
        (["nodecluster", "az"], "/api/v1/az/"),
    ):
        result = tutum(*args, "-o", "json")
        assert_ok(result, " ".join(args))
        listed = json.loads(result.out)
        served = api.get(path, limit=1000)["objects"]
        assert [item["resource_uri"] for item in listed] == [item["resource_uri"] for item in served], args
        assert {key: value for key, value in listed[0].items() if key != "tutum_action_uri"} == served[0]

    result = tutum("-o", "json", "nodecluster", "region", "-p", PROVIDER)
    assert {region["name"] for region in json.loads(result.out)} >= {REGION}
    result = tutum("nodecluster", "nodetype", "-p", "aws", "-r", "us-east-1", "--output", "json")
    assert {node_type["provider"] for node_type in json.loads(result.out)} == {"/api/v1/provider/aws/"}


def test_quiet_lists_and_inspect_as_a_table(tutum, api, two_nodes):
    result = tutum("nodecluster", "provider", "-q")
    assert set(result.out.split()) == {provider["name"] for provider in api.get("/api/v1/provider/")["objects"]}
    result = tutum("nodecluster", "az", "-q")
    assert "us-east-1a" in result.out.split()

    result = tutum("nodecluster", "inspect", two_nodes["name"], "-o", "table")
    assert_ok(result, "nodecluster inspect -o table")
    fields = {row.split(None, 1)[0]: row.split(None, 1)[1].strip() for row in result.out.splitlines()[1:] if " " in row}
    assert (fields["uuid"], fields["state"], fields["name"]) == (two_nodes["uuid"], "Deployed", two_nodes["name"])


def test_action_list_last_logs_tail_retry_and_cancel(tutum, api, two_nodes):
    result = tutum("action", "list", "-l", "1", "-q")
    assert_ok(result, "action list -l 1 -q")
    assert result.out.split() == [api.get("/api/v1/action/", limit=1)["objects"][0]["uuid"]]

    deploy = next(action for action in api.actions(two_nodes["uuid"]) if action["action"] == "Node Cluster Deploy")
    full = tutum("action", "logs", deploy["uuid"])
    result = tutum("action", "logs", "-t", "2", short(deploy["uuid"]))
    assert_ok(result, "action logs -t 2")
    assert result.out.splitlines() == full.out.splitlines()[-2:]
    result = tutum("action", "logs", "-o", "json", deploy["uuid"])
    assert [line["log"] for line in json_lines(result.out)] == full.out.splitlines()

    result = tutum("action", "retry", short(deploy["uuid"]))
    assert_ok(result, "action retry")
    assert result.out.strip() == deploy["uuid"]
    assert api.get(deploy["resource_uri"])["state"] in ("In progress", "Success")
    api.wait_until(lambda: api.get(deploy["resource_uri"])["state"] == "Success", what="the retried deploy")

    big, action_uri = api.create_cluster(unique_name("cli-cancel"), target_num_nodes=20)
    result = tutum("action", "cancel", action_uri.rstrip("/").rsplit("/", 1)[-1])
    assert_ok(result, "action cancel")
    assert api.get(action_uri)["state"] in ("Canceling", "Canceled")
    api.wait_until(lambda: api.get(action_uri)["state"] == "Canceled", what="the deploy canceled")
    assert api.cluster(big["uuid"])["target_num_nodes"] < 20

    result = tutum("action", "cancel", action_uri.rstrip("/").rsplit("/", 1)[-1])
    assert result.code == 3
    assert "HTTP 409" in result.err


def test_event_as_json_lines_until_ctrl_c(tutum, api, cli_dir, background):
    probe, _ = api.create_cluster(unique_name("cli-json-events"), deploy=False)
    watcher = background([str(cli_dir / "bin" / "tutum"), "event", "-o", "json"], pythonpath=cli_dir, name="event")

    deadline = time.monotonic() + 30
    while True:  # `tutum event` prints nothing when it connects: a change it shows means it is listening
        events = [line for line in json_lines(watcher.output()) if line.get("resource_uri") == probe["resource_uri"]]
        if events:
            break
        assert watcher.process.poll() is None, f"`tutum event` exited\n{watcher.describe()}"
        assert time.monotonic() < deadline, f"`tutum event -o json` showed no event of the probe\n{watcher.describe()}"
        api.patch_cluster(probe["uuid"], nickname=f"probe {time.monotonic():.1f}")
        time.sleep(1)

    assert {"type", "action", "parents", "resource_uri", "state", "uuid", "datetime", "id"} <= set(events[0])
    assert watcher.stop() == 0  # Ctrl-C ends it cleanly


def test_tables_are_the_official_clis_byte_for_byte(tutum, api, stack, client_home, two_nodes):
    """Both CLIs on the same stack: the same bytes, except relative times (compared by cell) and the az headers,
    whose typos ("NANE", "AVAIABLE") are fixed here."""
    python27 = find_python27()
    if python27 is None or not (OFFICIAL_CLI_DIR / "bin" / "tutum").exists():
        unavailable("Python 2.7 and the official CLI are needed to compare (run .ci/official-clients)")

    def official(*args: str) -> str:
        answer = subprocess.run(
            [str(python27), str(OFFICIAL_CLI_DIR / "bin" / "tutum"), *args],
            env=client_env(stack, OFFICIAL_CLI_DIR, client_home),
            capture_output=True,
            timeout=60,
        )
        assert answer.returncode == 0, answer
        return answer.stdout.decode()

    for args in (
        ["nodecluster", "provider"],
        ["nodecluster", "region", "-p", PROVIDER],
        ["nodecluster", "nodetype", "-p", PROVIDER, "-r", REGION],
        ["node", "list", "-q"],
        ["action", "list", "-q", "-l", "5"],
    ):
        assert tutum(*args).out == official(*args), args

    ago = re.compile(r"\d+ (year|day|hour|minute|second|microsecond)s? ago")
    for args in (["nodecluster", "list"], ["node", "list"], ["action", "list"]):
        new, old = tutum(*args).out, official(*args)
        assert [ago.sub("ago", cell) for row in table_rows(new) for cell in row] == [
            ago.sub("ago", cell) for row in table_rows(old) for cell in row
        ], args
        assert new.splitlines()[0] == old.splitlines()[0], args

    new, old = tutum("nodecluster", "az").out, official("nodecluster", "az")
    assert table_rows(new) == table_rows(old)
    assert (new.split()[:4], old.split()[:4]) == (
        ["NAME", "AVAILABLE", "RESOURCE", "URI"],
        ["NANE", "AVAIABLE", "RESOURCE", "URI"],
    )
