"""The Stream API in-process: events and action logs over websockets, SSE, auth, tenancy, resume, slow clients.

The stream application runs on Channels' communicators; its bus reads the (shared, in-memory) test database from
its worker thread, so these tests use `transactional_db`. The embedded default's polling is shortened.
"""

import asyncio
import base64
import json
from urllib.parse import quote

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async

from nodeclusters import services
from nodeclusters.choices import ActionState
from nodeclusters.models import Action
from nodeclusters.services.actions import action_finish, action_log
from nodeclusters.stream import consumers
from nodeclusters.stream.bus import get_bus
from nodeclusters.stream.routing import stream_application
from tests import factories

pytestmark = pytest.mark.usefixtures("transactional_db")

APP = stream_application()


@pytest.fixture(autouse=True)
def _fast_stream(settings):
    settings.STREAM_POLL_INTERVAL = 0.05
    settings.STREAM_REDIS_URL = ""


@pytest.fixture
def alice(catalog):
    user = factories.make_user("alice")
    return user, factories.make_api_key(user)


@pytest.fixture
def mallory(catalog):
    user = factories.make_user("mallory")
    return user, factories.make_api_key(user)


def run(scenario):
    """Run one async scenario; the bus of its loop stops with it."""

    async def wrapped():
        try:
            return await scenario()
        finally:
            await get_bus().stop()

    return asyncio.run(wrapped())


def apikey_header(user, key) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"ApiKey {user.username}:{key}".encode())]


class Socket(ApplicationCommunicator):
    """A websocket client of the stream application (channels.testing's would need daphne installed)."""

    def __init__(self, path: str, headers=()) -> None:
        path, _, query = path.partition("?")
        scope = {"type": "websocket", "path": path, "query_string": query.encode(), "headers": list(headers)}
        super().__init__(APP, scope)

    async def connect(self) -> None:
        await self.send_input({"type": "websocket.connect"})
        assert (await self.receive_output(timeout=5))["type"] == "websocket.accept"

    async def receive_from(self, timeout: float = 5) -> str:
        message = await self.receive_output(timeout=timeout)
        assert message["type"] == "websocket.send", message
        return message["text"]

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(timeout=5)


async def connect(path: str, headers=()) -> Socket:
    socket = Socket(path, headers)
    await socket.connect()
    return socket


async def receive_until(communicator, predicate, *, timeout: float = 5.0) -> list[dict]:
    """Messages until one matches `predicate` (included); fails if none comes in time."""
    seen = []
    while True:
        message = json.loads(await communicator.receive_from(timeout=timeout))
        seen.append(message)
        if predicate(message):
            return seen


def create_cluster(user, name="streamed"):
    return database_sync_to_async(factories.make_cluster)(user, name=name)


# --- events -----------------------------------------------------------------------------------------------------


def test_events_of_a_change_reach_its_owner_in_tutums_shape(alice):
    user, key = alice

    async def scenario():
        socket = await connect("/v1/events", apikey_header(user, key))
        cluster = await create_cluster(user)
        uri = f"/api/v1/nodecluster/{cluster.uuid}/"
        messages = await receive_until(socket, lambda m: m["type"] == "action")
        await socket.disconnect()
        return uri, cluster, messages

    uri, cluster, messages = run(scenario)
    created = messages[0]
    assert {key: created[key] for key in ("type", "action", "resource_uri", "state", "parents")} == {
        "type": "nodecluster",
        "action": "create",
        "resource_uri": uri,
        "state": "Init",
        "parents": [],
    }
    assert created["uuid"] == str(cluster.uuid)
    assert created["datetime"].endswith("+0000")
    assert messages[1]["parents"] == [uri]
    assert messages[1]["id"] == created["id"] + 1


def test_go_tutums_path_with_a_slash_and_basic_auth_work(alice):
    user, key = alice
    basic = base64.b64encode(f"{user.username}:{key}".encode()).decode()

    async def scenario():
        socket = await connect("/v1/events/", [(b"authorization", f"Basic {basic}".encode())])
        await create_cluster(user)
        messages = await receive_until(socket, lambda m: m["type"] == "nodecluster")
        await socket.disconnect()
        return messages

    assert run(scenario)[-1]["action"] == "create"


@pytest.mark.parametrize("query", ["user={user}&token={key}", "auth={auth}"])
def test_credentials_in_the_query_string(alice, query):
    user, key = alice
    path = "/v1/events?" + query.format(user=user.username, key=key, auth=quote(f"ApiKey {user.username}:{key}"))

    async def scenario():
        socket = await connect(path)
        await create_cluster(user)
        messages = await receive_until(socket, lambda m: m["type"] == "nodecluster")
        await socket.disconnect()
        return messages

    assert run(scenario)[-1]["state"] == "Init"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"ApiKey alice:0123456789abcdef0123456789abcdef01234567")],
        [(b"authorization", b"Bearer nonsense")],
        [],
    ],
)
def test_bad_or_missing_credentials_get_unauthorized_then_a_close(alice, headers):
    async def scenario():
        socket = await connect("/v1/events", headers)
        message = json.loads(await socket.receive_from(timeout=2))
        closed = await socket.receive_output(timeout=2)
        return message, closed

    message, closed = run(scenario)
    assert message == {"type": "error", "data": {"errorMessage": "UNAUTHORIZED"}}
    assert closed == {"type": "websocket.close", "code": 1000}


def test_a_user_sees_only_their_own_objects(alice, mallory):
    user, key = alice
    other, other_key = mallory

    async def scenario():
        spy = await connect("/v1/events", apikey_header(other, other_key))
        socket = await connect("/v1/events", apikey_header(user, key))
        await create_cluster(user, name="private")
        await receive_until(socket, lambda m: m["type"] == "action")
        await create_cluster(other, name="own")
        seen = await receive_until(spy, lambda m: m["type"] == "action")
        await socket.disconnect()
        await spy.disconnect()
        return seen

    seen = run(scenario)
    assert all("private" not in json.dumps(message) for message in seen)
    assert len(seen) == 2  # only mallory's own cluster and its action


def test_resume_with_since_replays_what_was_missed_then_goes_live(alice):
    user, key = alice

    async def scenario():
        first = await connect("/v1/events", apikey_header(user, key))
        await create_cluster(user, name="one")
        seen = await receive_until(first, lambda m: m["type"] == "action")
        await first.disconnect()
        cursor = seen[-1]["id"]
        # While the client is away:
        await create_cluster(user, name="two")
        await create_cluster(user, name="three")
        again = await connect(f"/v1/events?since={cursor}", apikey_header(user, key))
        replayed = [json.loads(await again.receive_from(timeout=5)) for _ in range(4)]
        await create_cluster(user, name="four")
        live = await receive_until(again, lambda m: m["type"] == "action")
        await again.disconnect()
        return cursor, replayed, live

    cursor, replayed, live = run(scenario)
    assert [message["id"] for message in replayed] == list(range(cursor + 1, cursor + 5))
    assert [message["type"] for message in replayed] == ["nodecluster", "action", "nodecluster", "action"]
    assert [message["id"] for message in live] == [cursor + 5, cursor + 6]  # no duplicate, no gap


def test_a_client_that_stops_reading_is_dropped_not_buffered(alice, settings, monkeypatch):
    """A socket whose sends block (the client's TCP window is full) is closed once its queue is full."""
    settings.STREAM_QUEUE_SIZE = 5
    user, key = alice
    stuck = asyncio.Event()

    async def blocked_send(self, text_data=None, bytes_data=None, close=False):
        await stuck.wait()  # never set: the client never reads

    monkeypatch.setattr(consumers.EventsConsumer, "send", blocked_send)

    async def scenario():
        socket = await connect("/v1/events", apikey_header(user, key))
        for index in range(8):  # 16 events, more than the queue holds
            await create_cluster(user, name=f"flood-{index}")
        closed = await socket.receive_output(timeout=5)
        return closed, get_bus().subscriptions.get(user.pk, set())

    closed, subscriptions = run(scenario)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == consumers.CLOSE_TOO_SLOW
    assert all(subscription.dropped for subscription in subscriptions)  # nothing more is queued for it


def test_idle_sockets_cost_no_query(alice, monkeypatch):
    """The bus's queries per look at the outbox are the same with 1 or 30 idle sockets: they cost nothing."""
    from django.db.backends import utils

    user, key = alice
    counted = {"queries": 0}
    execute = utils.CursorWrapper._execute

    def counting(self, *args, **kwargs):
        counted["queries"] += 1
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(utils.CursorWrapper, "_execute", counting)

    async def per_tick(bus) -> float:
        await bus.tick()  # whatever the stopped loop or a connection had in flight settles first
        counted["queries"] = 0
        for _ in range(5):
            await bus.tick()
        return counted["queries"] / 5

    async def subscribed(bus, count: int) -> None:
        while len(bus.subscriptions.get(user.pk, ())) < count:  # connect() returns at accept, before subscribing
            await asyncio.sleep(0.01)

    async def scenario():
        sockets = [await connect("/v1/events", apikey_header(user, key))]
        bus = get_bus()
        await subscribed(bus, 1)
        await bus.stop()  # drive the bus by hand: count whole looks at the outbox only
        one = await per_tick(bus)
        sockets += [await connect("/v1/events", apikey_header(user, key)) for _ in range(29)]
        await subscribed(bus, 30)
        await bus.stop()
        thirty = await per_tick(bus)
        return one, thirty, len(bus.subscriptions[user.pk])

    one, thirty, sockets_subscribed = run(scenario)
    assert sockets_subscribed == 30
    assert one == thirty <= 2


# --- action logs ------------------------------------------------------------------------------------------------


def _deploying_action(user):
    cluster = factories.deploy(factories.make_cluster(user, target_num_nodes=1))
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    action_log(action=action, message="first line")
    action_log(action=action, message="second line")
    return action


def test_action_logs_tail_without_follow_then_close(alice):
    user, key = alice

    async def scenario():
        action = await database_sync_to_async(_deploying_action)(user)
        socket = await connect(f"/v1/action/{action.uuid}/logs/?tail=2&follow=false", apikey_header(user, key))
        lines = [json.loads(await socket.receive_from(timeout=3)) for _ in range(2)]
        closed = await socket.receive_output(timeout=3)
        return lines, closed

    lines, closed = run(scenario)
    assert [line["log"] for line in lines] == ["first line", "second line"]
    assert all(line["type"] == "log" and isinstance(line["timestamp"], int) for line in lines)
    assert closed == {"type": "websocket.close", "code": 1000}


def test_action_logs_follow_until_the_action_ends(alice):
    user, key = alice

    async def scenario():
        action = await database_sync_to_async(_deploying_action)(user)
        path = f"/v1/action/{action.uuid}/logs/?user={user.username}&token={key}"  # go-tutum's way
        socket = await connect(path)
        tail = [json.loads(await socket.receive_from(timeout=3)) for _ in range(3)]
        await database_sync_to_async(action_log)(action=action, message="while following")
        followed = json.loads(await socket.receive_from(timeout=3))
        await database_sync_to_async(action_finish)(action=action, state=ActionState.SUCCESS, message="done")
        last = json.loads(await socket.receive_from(timeout=3))
        closed = await socket.receive_output(timeout=3)
        return tail, followed, last, closed

    tail, followed, last, closed = run(scenario)
    assert tail[-1]["log"] == "second line"
    assert followed["log"] == "while following"
    assert last["log"] == "done"
    assert closed == {"type": "websocket.close", "code": 1000}


def test_someone_elses_action_log_is_not_found(alice, mallory):
    user, _ = alice
    other, other_key = mallory

    async def scenario():
        action = await database_sync_to_async(_deploying_action)(user)
        socket = await connect(f"/v1/action/{action.uuid}/logs/", apikey_header(other, other_key))
        message = json.loads(await socket.receive_from(timeout=3))
        await socket.receive_output(timeout=3)
        return message

    assert run(scenario) == {"type": "error", "data": {"errorMessage": "NOT_FOUND"}}


# --- SSE ------------------------------------------------------------------------------------------------------------


async def sse_open(headers, query: bytes = b"") -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(
        APP,
        {"type": "http", "method": "GET", "path": "/api/v1/events/", "query_string": query, "headers": headers},
    )
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    return communicator


async def sse_events(communicator, count: int) -> list[tuple[int, dict]]:
    events = []
    while len(events) < count:
        chunk = (await communicator.receive_output(timeout=5))["body"].decode()
        for block in chunk.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":")
            if "data" in fields:
                events.append((int(fields["id"]), json.loads(fields["data"])))
    return events


def test_sse_streams_events_with_ids_and_resumes_from_last_event_id(alice, settings):
    settings.STREAM_SSE_HEARTBEAT_SECONDS = 0.2
    user, key = alice

    async def scenario():
        stream = await sse_open(apikey_header(user, key))
        start = await stream.receive_output(timeout=5)
        await stream.receive_output(timeout=5)  # retry: hint
        heartbeat = (await stream.receive_output(timeout=5))["body"]
        await create_cluster(user)
        first = await sse_events(stream, 2)
        await stream.send_input({"type": "http.disconnect"})
        await create_cluster(user, name="missed")
        resumed = await sse_open([*apikey_header(user, key), (b"last-event-id", str(first[-1][0]).encode())])
        await resumed.receive_output(timeout=5)
        await resumed.receive_output(timeout=5)
        replay = await sse_events(resumed, 2)
        await resumed.send_input({"type": "http.disconnect"})
        return start, heartbeat, first, replay

    start, heartbeat, first, replay = run(scenario)
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert heartbeat.startswith(b": heartbeat")
    assert [event["type"] for _, event in first] == ["nodecluster", "action"]
    assert [sequence for sequence, _ in replay] == [first[-1][0] + 1, first[-1][0] + 2]
    assert replay[0][1]["state"] == "Init"


def test_sse_without_credentials_is_a_json_401(catalog):
    async def scenario():
        stream = await sse_open([])
        start = await stream.receive_output(timeout=3)
        body = await stream.receive_output(timeout=3)
        return start, body

    start, body = run(scenario)
    assert start["status"] == 401
    assert "error" in json.loads(body["body"])


def test_deploy_through_the_services_streams_the_whole_story(alice):
    """A deploy's events as a client sees them: the cluster going Deploying, and its action."""
    user, key = alice

    async def scenario():
        cluster = await create_cluster(user)
        socket = await connect("/v1/events", apikey_header(user, key))
        await database_sync_to_async(services.node_cluster_deploy)(
            node_cluster_uuid=cluster.uuid, owner=user, context=factories.CONTEXT
        )
        messages = await receive_until(socket, lambda m: m["type"] == "nodecluster")
        await socket.disconnect()
        return messages

    messages = run(scenario)
    assert [(m["type"], m["action"], m["state"]) for m in messages] == [
        ("action", "create", "In progress"),
        ("nodecluster", "update", "Deploying"),
    ]


def test_failed_logins_on_the_stream_are_throttled_per_address(alice, settings):
    """Guessing keys on the stream counts against the address as on REST: once blocked, even a right key fails."""
    settings.API_THROTTLE_RATE = "1000/min"
    settings.API_FAILED_AUTH_RATE = "3/min"
    user, key = alice
    wrong = [(b"authorization", f"ApiKey {user.username}:{'0' * 40}".encode())]

    async def first_message(headers) -> dict:
        socket = await connect("/v1/events", headers)
        message = json.loads(await socket.receive_from(timeout=3))
        await socket.disconnect()
        return message

    async def scenario():
        allowed = await connect("/v1/events", apikey_header(user, key))  # the right key works before any guess
        await create_cluster(user)
        before = await receive_until(allowed, lambda m: m["type"] == "action")
        await allowed.disconnect()
        guesses = [await first_message(wrong) for _ in range(3)]
        after = await first_message(apikey_header(user, key))
        return before, guesses, after

    before, guesses, after = run(scenario)
    assert before[0]["type"] == "nodecluster"
    assert all(message["data"]["errorMessage"] == "UNAUTHORIZED" for message in guesses)
    assert after == {"type": "error", "data": {"errorMessage": "UNAUTHORIZED"}}  # blocked: the right key too


def test_events_reach_clients_while_the_celery_broker_is_down(alice, monkeypatch):
    """The outbox does not go through the broker: a deploy accepted while it is down is still streamed."""
    from celery import current_app
    from kombu.exceptions import OperationalError

    user, key = alice

    def broker_down(*args, **kwargs):
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(current_app, "send_task", broker_down)

    async def scenario():
        cluster = await create_cluster(user)
        socket = await connect("/v1/events", apikey_header(user, key))
        await database_sync_to_async(services.node_cluster_deploy)(
            node_cluster_uuid=cluster.uuid, owner=user, context=factories.CONTEXT
        )
        messages = await receive_until(socket, lambda m: m["type"] == "nodecluster")
        await socket.disconnect()
        return messages

    assert [(m["type"], m["state"]) for m in run(scenario)] == [("action", "In progress"), ("nodecluster", "Deploying")]
