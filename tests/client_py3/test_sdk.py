"""The Python 3 client's API (python-tutum 0.21's names) against a live stack, checked over plain HTTP behind it.

Every class and method of the node cluster side: NodeCluster, Node, Action, the catalog, Utils, TutumEvents; and
what is new: waits driven by the event stream (and by polling without it), typed attributes, list pages followed
through `meta.next`, and TutumEvents resuming by cursor after its connection was cut.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import connect

from tests.client_py3.helpers import CuttableProxy, wait_until
from tests.clients.conftest import CONVERGE_SECONDS, NODE_TYPE, PROVIDER, REGION, unique_name


def _deployed_cluster(sdk, api, *, nodes: int = 1):
    """A cluster made and deployed over HTTP, as the client finds it."""
    cluster, _ = api.create_cluster(unique_name("sdk"), target_num_nodes=nodes)
    api.wait_for_cluster(cluster["uuid"], "Deployed")
    return sdk.NodeCluster.fetch(cluster["uuid"])


def test_the_module_settings_authenticate_and_bad_ones_raise_tutum_auth_error(sdk, stack, monkeypatch):
    assert sdk.auth.is_authenticated()
    assert sdk.api.http.send_request("GET", "/auth")["username"] == stack.user  # python-tutum's own call

    monkeypatch.setattr(sdk, "apikey", "0" * 40)
    with pytest.raises(sdk.TutumAuthError, match="Not authorized"):
        sdk.NodeCluster.list()
    with pytest.raises(sdk.TutumAuthError):
        sdk.auth.verify_credential(stack.user, "0" * 40)

    monkeypatch.setattr(sdk, "user", None)
    monkeypatch.setattr(sdk, "tutum_auth", f"ApiKey {stack.user}:{stack.apikey}")  # TUTUM_AUTH's form
    assert sdk.NodeCluster.list() is not None
    sdk.auth.authenticate(stack.user, stack.apikey)
    assert (sdk.user, sdk.apikey) == (stack.user, stack.apikey)


def test_the_catalog_lists_and_fetches_by_its_names(sdk, api):
    providers = {provider.name: provider for provider in sdk.Provider.list()}
    assert set(providers) == {provider["name"] for provider in api.get("/api/v1/provider/")["objects"]}
    assert sdk.Provider.fetch(PROVIDER).label == "Digital Ocean"

    region = sdk.Region.fetch(f"{PROVIDER}/{REGION}")
    assert (region.name, region.label, region.resource_uri) == (
        REGION,
        "London 1",
        f"/api/v1/region/{PROVIDER}/{REGION}/",
    )
    assert region.pk == f"{PROVIDER}/{REGION}"
    assert region.refresh() is True  # its detail URI is provider/name
    regions = sdk.Region.list(provider=providers[PROVIDER])  # an object as a filter: sent as its resource URI
    assert REGION in {one.name for one in regions}
    assert {one.resource_uri.split("/")[4] for one in regions} == {PROVIDER}

    node_type = sdk.NodeType.fetch(f"{PROVIDER}/{NODE_TYPE}")
    assert (node_type.label, node_type.provider) == ("1GB", f"/api/v1/provider/{PROVIDER}/")
    assert region.resource_uri in node_type.regions
    assert len(sdk.NodeType.list()) == api.get("/api/v1/nodetype/", limit=100)["meta"]["total_count"]

    zone = sdk.AZ.fetch("aws/sa-east-1/sa-east-1a")
    assert (zone.name, zone.resource_uri) == ("sa-east-1a", "/api/v1/az/aws/sa-east-1/sa-east-1a/")
    assert len(sdk.AZ.list()) == api.get("/api/v1/az/", limit=100)["meta"]["total_count"]


def test_a_cluster_created_deployed_scaled_retagged_upgraded_and_terminated(sdk, api):
    region = sdk.Region.fetch(f"{PROVIDER}/{REGION}")
    node_type = sdk.NodeType.fetch(f"{PROVIDER}/{NODE_TYPE}")
    name = unique_name("sdk-life")

    cluster = sdk.NodeCluster.create(name=name, node_type=node_type, region=region, target_num_nodes=1)
    assert cluster.is_dirty and not getattr(cluster, "uuid", None)
    assert cluster.save() is True
    assert (cluster.state, cluster.name, cluster.region) == ("Init", name, region.resource_uri)
    assert isinstance(cluster.state, sdk.NodeClusterState)
    assert not cluster.is_dirty
    create = api.get(cluster.tutum_action_uri)
    assert (create["action"], create["state"], create["object"]) == (
        "Node Cluster Create",
        "Success",
        cluster.resource_uri,
    )
    assert cluster.last_action().action == "Node Cluster Create"

    assert cluster.deploy() is True
    assert cluster.state == "Deploying"
    assert api.get(cluster.tutum_action_uri)["action"] == "Node Cluster Deploy"
    assert cluster.wait_for("Deployed", timeout=CONVERGE_SECONDS) is cluster
    assert (cluster.state, cluster.current_num_nodes) == ("Deployed", 1)
    assert api.cluster(cluster.uuid)["state"] == "Deployed"
    assert isinstance(cluster.deployed_datetime, sdk.Timestamp)
    assert isinstance(cluster.deployed_datetime.datetime, datetime.datetime)
    assert cluster.deployed_datetime == api.cluster(cluster.uuid)["deployed_datetime"]  # still the wire's string

    cluster.target_num_nodes = 2
    cluster.tags.add("web")
    assert cluster.refresh() is False  # unsaved changes are not thrown away
    assert cluster.save() is True
    assert cluster.state == "Scaling"
    assert api.get(cluster.tutum_action_uri)["action"] == "Node Cluster Scale"
    cluster.wait_for("Deployed", timeout=CONVERGE_SECONDS)
    behind = api.cluster(cluster.uuid)
    assert (behind["target_num_nodes"], behind["current_num_nodes"], behind["tags"]) == (2, 2, [{"name": "web"}])
    assert cluster.tags.names() == ["web"]
    assert len(api.live_nodes(cluster.uuid)) == 2

    assert [one.uuid for one in sdk.NodeCluster.list(name=name)] == [cluster.uuid]
    assert cluster.uuid in {one.uuid for one in sdk.NodeCluster.list(state="Deployed")}
    assert {node.uuid for node in cluster.node_list()} == {node["uuid"] for node in api.live_nodes(cluster.uuid)}

    versions = {node["uuid"]: node["docker_version"] for node in api.live_nodes(cluster.uuid)}
    assert cluster.upgrade_docker() is True
    upgrade = cluster.last_action()
    assert upgrade.action == "Node Cluster Docker Upgrade"
    assert upgrade.wait(timeout=CONVERGE_SECONDS).state == "Success"
    assert all(node["docker_version"] != versions[node["uuid"]] for node in api.live_nodes(cluster.uuid))

    assert cluster.delete() is True
    assert cluster.state == "Terminating"
    assert api.get(cluster.tutum_action_uri)["action"] == "Node Cluster Terminate"
    cluster.wait_for("Terminated", timeout=CONVERGE_SECONDS)
    assert cluster.destroyed_datetime
    assert {node["state"] for node in api.nodes(cluster.uuid)} == {"Terminated"}


def test_lists_follow_meta_next_and_limit_caps_them(sdk, api):
    cluster = _deployed_cluster(sdk, api, nodes=3)
    everything = [node.uuid for node in sdk.Node.list()]
    assert len(everything) == api.get("/api/v1/node/")["meta"]["total_count"] >= 3

    assert [node.uuid for node in sdk.Node.list(page_size=2)] == everything  # one page of two at a time
    assert len(sdk.Node.list(limit=2)) == 2
    mine = sdk.Node.list(page_size=1, node_cluster=cluster)  # `next` keeps the filters
    assert {node.uuid for node in mine} == {node["uuid"] for node in api.nodes(cluster.uuid)}


def test_node_fetch_list_retag_health_check_upgrade_and_delete(sdk, api):
    cluster = _deployed_cluster(sdk, api, nodes=2)
    listed = sdk.Node.list(node_cluster=cluster.resource_uri)
    assert len(listed) == 2
    node = sdk.Node.fetch(listed[0].uuid)
    assert (node.node_cluster, node.state) == (cluster.resource_uri, "Deployed")
    assert isinstance(node.state, sdk.NodeState)
    assert isinstance(node.last_seen.datetime, datetime.datetime)

    node.tags.add(["tag-1"])
    assert node.save() is True
    assert api.get(node.resource_uri)["tags"] == [{"name": "tag-1"}]
    with pytest.raises(AttributeError):
        sdk.Node.create(nickname="new").save()  # nodes come from clusters

    assert node.health_check() is True
    assert api.get(node.tutum_action_uri)["object"] == node.resource_uri
    assert node.last_action().wait(timeout=CONVERGE_SECONDS).state == "Success"

    version = node.docker_version
    assert node.upgrade_docker() is True
    assert node.state == "Upgrading"
    node.wait_for("Deployed", timeout=CONVERGE_SECONDS)
    assert node.docker_version != version == listed[0].docker_version

    assert node.delete() is True
    assert node.state in ("Terminating", "Terminated")
    node.wait_for("Terminated", timeout=CONVERGE_SECONDS)
    assert api.get(node.resource_uri)["state"] == "Terminated"


def test_actions_list_fetch_logs_cancel_and_retry(sdk, api):
    cluster = _deployed_cluster(sdk, api, nodes=2)
    actions = sdk.Action.list(object=cluster.resource_uri)
    assert [action.action for action in actions] == ["Node Cluster Deploy", "Node Cluster Create"]
    deploy = sdk.Action.fetch(actions[0].uuid)
    assert (deploy.state, deploy.object) == ("Success", cluster.resource_uri)
    assert isinstance(deploy.state, sdk.ActionState)
    assert deploy.end_date.datetime >= deploy.start_date.datetime

    messages: list[str] = []
    deploy.logs(tail=300, follow=True, log_handler=messages.append)  # ended: the tail, then the stream closes
    lines = [sdk.api.stream.parse_message(message) for message in messages]
    assert all(line["type"] == "log" and isinstance(line["timestamp"], int) for line in lines)
    for node in api.live_nodes(cluster.uuid):
        assert any(node["uuid"] in line["log"] for line in lines), messages
    assert [line["log"] for line in deploy.log_lines()] == [line["log"] for line in lines]
    tail: list[str] = []
    deploy.logs(2, False, tail.append)
    assert tail == messages[-2:]

    # Retry the finished deploy: In progress again, then Success.
    assert deploy.retry() is True
    assert deploy.state == "In progress"
    assert deploy.wait(timeout=CONVERGE_SECONDS).state == "Success"

    # Cancel a deploy of many nodes while it runs: the cluster keeps what is up.
    big, action_uri = api.create_cluster(unique_name("sdk-cancel"), target_num_nodes=15)
    running = sdk.Utils.fetch_by_resource_uri(action_uri)
    assert running.state == "In progress" and running.can_be_canceled
    followed: list[str] = []
    follower = threading.Thread(target=running.logs, args=(None, True, followed.append))
    follower.start()
    assert running.cancel() is True
    assert running.state == "Canceling"
    assert running.wait(timeout=CONVERGE_SECONDS).state in ("Canceled", "Success")
    follower.join(timeout=CONVERGE_SECONDS)
    assert not follower.is_alive(), "Action.logs(follow=True) did not end with the action"
    assert any("Cancel requested" in message for message in followed), followed
    assert api.cluster(big["uuid"])["target_num_nodes"] < 15


def test_utils_find_objects_by_name_short_and_long_uuid(sdk, api):
    cluster = _deployed_cluster(sdk, api)
    for identifier in (cluster.name, cluster.uuid[:8], cluster.uuid):
        assert sdk.Utils.fetch_remote_nodecluster(identifier).uuid == cluster.uuid
    (node,) = api.live_nodes(cluster.uuid)
    assert sdk.Utils.fetch_remote_node(node["uuid"][:8]).uuid == node["uuid"]
    deploy = sdk.Action.list(object=cluster.resource_uri)[0]
    assert sdk.Utils.fetch_remote_action(deploy.uuid[:8]).uuid == deploy.uuid

    with pytest.raises(sdk.ObjectNotFound, match="Cannot find a node cluster with the identifier 'no-such-x'"):
        sdk.Utils.fetch_remote_nodecluster("no-such-x")
    assert isinstance(sdk.Utils.fetch_remote_node("no-such-x", raise_exceptions=False), sdk.ObjectNotFound)
    twin, _ = api.create_cluster(cluster.name, deploy=False)  # names need not be unique
    with pytest.raises(sdk.NonUniqueIdentifier):
        sdk.Utils.fetch_remote_nodecluster(cluster.name)
    assert sdk.Utils.fetch_remote_nodecluster(twin["uuid"]).state == "Init"

    assert sdk.Utils.fetch_by_resource_uri(cluster.resource_uri).uuid == cluster.uuid
    assert sdk.Utils.fetch_by_resource_uri(node["resource_uri"]).uuid == node["uuid"]
    assert sdk.Utils.fetch_by_resource_uri(deploy.resource_uri).action == "Node Cluster Deploy"
    assert sdk.Utils.fetch_by_resource_uri(f"/api/v1/region/{PROVIDER}/{REGION}/").label == "London 1"
    with pytest.raises(sdk.TutumApiError, match="Unsupported resource type"):
        sdk.Utils.fetch_by_resource_uri("/api/v1/service/abc/")


def test_get_all_attributes_is_the_json_with_the_action_uri(sdk, api):
    cluster = _deployed_cluster(sdk, api)
    attributes = cluster.get_all_attributes()
    assert {key: value for key, value in attributes.items() if key != "tutum_action_uri"} == api.cluster(cluster.uuid)
    assert attributes["tutum_action_uri"] == ""  # a read has no action, as python-tutum injected it


def test_waits_time_out_and_refuse_what_cannot_happen(sdk, api):
    cluster, _ = api.create_cluster(unique_name("sdk-wait"), deploy=False)
    cluster = sdk.NodeCluster.fetch(cluster["uuid"])
    started = time.monotonic()
    with pytest.raises(sdk.TutumTimeoutError, match="still Init"):
        cluster.wait_for("Deployed", timeout=1)
    assert 1 <= time.monotonic() - started < 5

    cluster.delete()
    cluster.wait_for("Terminated", timeout=CONVERGE_SECONDS)
    with pytest.raises(sdk.TutumWaitError, match="it will not become Deployed"):
        cluster.wait_for("Deployed", timeout=CONVERGE_SECONDS)


def test_wait_for_polls_when_the_stream_cannot_be_reached(sdk, api, monkeypatch):
    monkeypatch.setattr(sdk, "stream_url", "ws://127.0.0.1:9/v1/")
    cluster, _ = api.create_cluster(unique_name("sdk-poll"), target_num_nodes=1)
    cluster = sdk.NodeCluster.fetch(cluster["uuid"])

    cluster.wait_for("Deployed", timeout=CONVERGE_SECONDS, poll_interval=0.3)

    assert api.cluster(cluster.uuid)["state"] == "Deployed"


def test_tutum_events_hands_each_event_to_the_handlers(sdk, api):
    opened, closed, events = [], [], []
    listener = sdk.TutumEvents()
    listener.on_open(lambda: opened.append(time.monotonic()))
    listener.on_close(lambda: closed.append(time.monotonic()))
    listener.on_message(events.append)
    thread = threading.Thread(target=listener.run_forever, daemon=True)
    thread.start()
    wait_until(lambda: opened, timeout=10, what="TutumEvents to connect")

    cluster, _ = api.create_cluster(unique_name("sdk-events"), target_num_nodes=1)
    uri = f"/api/v1/nodecluster/{cluster['uuid']}/"
    wait_until(
        lambda: any(event["resource_uri"] == uri and event["state"] == "Deployed" for event in events),
        timeout=CONVERGE_SECONDS,
        what="the cluster's Deployed event",
    )
    listener.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(opened) == len(closed) == 1

    mine = [event for event in events if event.concerns(uri)]
    assert (mine[0]["type"], mine[0]["action"], mine[0]["state"]) == ("nodecluster", "create", "Init")
    assert {event["type"] for event in mine} == {"nodecluster", "node", "action"}
    assert all({"type", "action", "parents", "resource_uri", "state", "uuid", "datetime", "id"} <= set(e) for e in mine)
    ids = [event["id"] for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert listener.last_event_id == ids[-1]
    assert mine[-1].resource_uri == mine[-1]["resource_uri"]  # keys are attributes too


def test_tutum_events_resumes_after_a_cut_connection_with_no_gap_and_no_duplicate(sdk, api, stack, monkeypatch):
    proxy = CuttableProxy(urlsplit(stack.stream_host).port)
    monkeypatch.setattr(sdk, "stream_url", f"ws://127.0.0.1:{proxy.port}/v1/")
    probe, _ = api.create_cluster(unique_name("sdk-resume"), deploy=False)
    opened, events = [], []
    listener = sdk.TutumEvents()
    listener.on_open(lambda: opened.append(proxy.accepted))
    listener.on_message(events.append)
    thread = threading.Thread(target=listener.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: opened, timeout=10, what="TutumEvents to connect")
        api.patch_cluster(probe["uuid"], nickname="before the cut")
        wait_until(lambda: events, timeout=10, what="the first event")

        proxy.cut()  # the connection drops; changes go on while the client is away
        for number in range(3):
            api.patch_cluster(probe["uuid"], nickname=f"during the cut {number}")
        wait_until(lambda: len(opened) >= 2, timeout=10, what="TutumEvents to reconnect")
        api.patch_cluster(probe["uuid"], nickname="after the cut")

        def all_received():
            # Everything of the probe from the listener's first event on, as a fresh replay from 0 shows it.
            received = [event["id"] for event in events]
            expected = [event_id for event_id in _outbox_ids(api, probe) if event_id >= received[0]]
            return expected if len(expected) >= 8 and set(expected) <= set(received) else None

        expected = wait_until(all_received, timeout=15, what="the missed and the new events", interval=0.2)
        time.sleep(0.5)  # and nothing twice
    finally:
        listener.stop()
        thread.join(timeout=5)
        proxy.close()

    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids)), ids  # in order, no duplicate
    assert [event_id for event_id in ids if event_id in set(expected)] == expected
    updates = [
        event for event in events if event["resource_uri"] == probe["resource_uri"] and event["action"] == "update"
    ]
    assert len(updates) == 5, updates  # one per nickname change: before, during and after the cut
    assert len(opened) == 2


def _outbox_ids(api, cluster) -> list[int]:
    """The ids of the events of the cluster and its actions, as a new connection replays them with since=0."""
    found = []
    headers = {"Authorization": api.stack.auth_header}
    with connect(f"{api.stack.stream_host}/v1/events?since=0", additional_headers=headers) as socket:
        while True:
            try:
                event = json.loads(socket.recv(timeout=0.3))
            except TimeoutError:
                return found
            if event["resource_uri"] == cluster["resource_uri"] or cluster["resource_uri"] in event["parents"]:
                found.append(event["id"])


def test_tutum_events_with_bad_credentials_raises_tutum_auth_error_once(sdk, monkeypatch):
    monkeypatch.setattr(sdk, "apikey", "0123456789" * 4)
    opened, errors = [], []
    listener = sdk.TutumEvents()
    listener.on_open(lambda: opened.append(1))
    listener.on_error(errors.append)

    with pytest.raises(sdk.TutumAuthError, match="Not authorized"):
        listener.run_forever()

    assert len(opened) == 1
    assert [type(error).__name__ for error in errors] == ["TutumAuthError"]
