"""The curl examples of Tutum's reference (nodecluster-overview.md) run unchanged against this server.

Only the host, the credentials and the example uuid are replaced; each command is run by the real curl
against a live server on 127.0.0.1, in the order the reference gives them.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nodeclusters.models import NodeCluster
from nodeclusters.services import actions as action_services
from tests import factories

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "nodecluster-overview.md"
EXAMPLE_UUID = "7eaf7fff-882c-4f3d-9a8f-a22317ac00ce"


def reference_commands() -> list[str]:
    blocks = re.findall(r"```shell\n(.*?)```", REFERENCE.read_text(), re.S)
    # The reference breaks each command over lines without continuations; a shell reads them as one command.
    return [" ".join(line.strip() for line in block.strip().splitlines()) for block in blocks]


def test_the_reference_curl_examples_work_unchanged(live_server, transactional_db, catalog, settings, monkeypatch):
    # Checked here, not with skipif: in CI a missing reference or curl must fail the test, never skip it.
    for missing, reason in (
        (not REFERENCE.exists(), f"the shared reference is not beside this checkout ({REFERENCE})"),
        (shutil.which("curl") is None, "needs curl"),
    ):
        if missing:
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    settings.API_THROTTLE_RATE = ""
    handed_off = []  # no engine here: record the hand-offs instead of publishing them
    monkeypatch.setattr(action_services, "_enqueue", lambda task, args: handed_off.append((task, args)))
    user = factories.make_user("alice")
    key = factories.make_api_key(user)
    commands = reference_commands()
    assert len(commands) == 5  # list, create, get, update, terminate

    results = []
    cluster_uuid = None
    for command in commands:
        command = command.replace("https://dashboard.tutum.co", live_server.url)
        command = command.replace("username:apikey", f"alice:{key}")
        if cluster_uuid:
            command = command.replace(EXAMPLE_UUID, cluster_uuid)
        argv = [*shlex.split(command), "--silent", "--show-error", "--write-out", "\n%{http_code}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        body, _, status = done.stdout.rpartition("\n")
        results.append((int(status), json.loads(body) if body else None))
        if results[-1][0] == 201:
            cluster_uuid = results[-1][1]["uuid"]

    (
        (list_status, listing),
        (create_status, created),
        (get_status, fetched),
        (patch_status, patched),
        (
            delete_status,
            deleted,
        ),
    ) = results
    assert (list_status, listing["meta"]["total_count"]) == (200, 0)
    assert (create_status, created["state"], created["name"]) == (201, "Init", "my_cluster")
    assert (get_status, fetched["uuid"]) == (200, cluster_uuid)
    assert (patch_status, patched["target_num_nodes"]) == (200, 3)  # before deploy a new size only sets the target
    assert (delete_status, deleted["state"], deleted["target_num_nodes"]) == (202, "Terminating", 0)
    assert handed_off == [("nodeclusters.reconcile_node_cluster", [cluster_uuid])]  # the terminate
    cluster = NodeCluster.objects.get(pk=cluster_uuid)
    assert cluster.state == "Terminating"
    assert list(cluster.actions.values_list("action", flat=True).order_by("start_date")) == [
        "Node Cluster Create",
        "Node Cluster Update",
        "Node Cluster Terminate",
    ]
