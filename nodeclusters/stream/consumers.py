"""Stream API endpoints: the events websocket, the action logs websocket, and events as Server-Sent Events.

Thin, as Channels consumers should be: authentication is the middleware's, reading and fan-out are the bus's,
and each connection only pumps its own bounded queue to its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from nodeclusters import selectors

from .auth import query_params
from .bus import DROPPED, ENDED, EventBus, Subscription, event_message, get_bus, log_message

logger = logging.getLogger(__name__)

#: Close codes. 1000: done (a log that ended); 1008: the client fell too far behind (it may resume with since=).
CLOSE_NORMAL = 1000
CLOSE_TOO_SLOW = 1008
UNAUTHORIZED = orjson.dumps({"type": "error", "data": {"errorMessage": "UNAUTHORIZED"}}).decode()
_HISTORY_PAGE = 500


def _error(message: str, **extra) -> str:
    return orjson.dumps({"type": "error", "data": {"errorMessage": message, **extra}}).decode()


def parse_cursor(value: str | None) -> int | None:
    """A resume cursor (`since` or `Last-Event-ID`): a whole number, or None for none or nonsense."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


async def replay(subscription: Subscription, since: int, send) -> int:
    """Send the owner's events after `since` from the outbox, page by page; returns the last sequence sent.

    The subscription is registered before this runs, so what commits meanwhile is queued as well; the pump
    skips queued events at or below what history already sent.
    """
    last = since
    while True:
        rows = await database_sync_to_async(selectors.events_after)(
            owner_id=subscription.owner_id, after=last, limit=_HISTORY_PAGE
        )
        for row in rows:
            await send(row["sequence"], event_message(row))
            last = row["sequence"]
        if len(rows) < _HISTORY_PAGE:
            return last


class EventsConsumer(AsyncWebsocketConsumer):
    """`/v1/events`: every change of the user's node clusters, nodes and actions, as it commits.

    `?since=<id>` first replays what the client missed (within the retention window). The server never closes
    this socket on its own (go-tutum never redials), except when the client cannot keep up.
    """

    bus: EventBus
    subscription: Subscription | None = None
    pump: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None:
            await self.accept()
            await self.send(text_data=UNAUTHORIZED)
            await self.close(code=CLOSE_NORMAL)
            return
        # Subscribed before the handshake completes: whatever commits once the client is connected reaches it.
        self.bus = get_bus()
        self.subscription = await self.bus.subscribe(user.pk, on_drop=self._too_slow)
        await self.accept()
        since = parse_cursor(query_params(self.scope).get("since"))
        self.pump = asyncio.get_running_loop().create_task(self._pump(since))

    def _too_slow(self) -> None:
        """The client stopped reading and its queue is full: stop sending and close (the close is not queued)."""
        self.pump.cancel()
        asyncio.get_running_loop().create_task(
            self.close(code=CLOSE_TOO_SLOW, reason="too slow; reconnect with since=<last id>")
        )

    async def _send_event(self, sequence: int, message: bytes) -> None:
        await self.send(text_data=message.decode())

    async def _pump(self, since: int | None) -> None:
        last = await replay(self.subscription, since, self._send_event) if since is not None else 0
        while True:
            item = await self.subscription.queue.get()
            if item is DROPPED:
                return
            sequence, message = item
            if sequence > last:
                await self._send_event(sequence, message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Clients have nothing to say on this socket; pings are answered by the server itself."""

    async def disconnect(self, code) -> None:
        if self.subscription is not None:
            self.bus.unsubscribe(self.subscription)
        if self.pump is not None:
            self.pump.cancel()


class ActionLogsConsumer(AsyncWebsocketConsumer):
    """`/v1/action/<uuid>/logs/?tail=300&follow=true`: the last `tail` lines, then new ones until the action ends."""

    follow = None
    pump: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None:
            await self.send(text_data=UNAUTHORIZED)
            await self.close(code=CLOSE_NORMAL)
            return
        params = query_params(self.scope)
        tail = params.get("tail", "300")
        if not tail.isdigit():
            await self.send(text_data=_error("tail must be a whole number of lines, e.g. tail=300"))
            await self.close(code=CLOSE_NORMAL)
            return
        following = params.get("follow", "true").lower() not in ("false", "0", "no")
        action_uuid = self.scope["url_route"]["kwargs"]["uuid"]
        found = await database_sync_to_async(selectors.action_log_tail)(
            owner_id=user.pk, action_uuid=action_uuid, tail=int(tail)
        )
        if found is None:
            await self.send(text_data=_error("NOT_FOUND"))
            await self.close(code=CLOSE_NORMAL)
            return
        open_, lines = found
        for line in lines:
            await self.send(text_data=log_message(line).decode())
        if not following or not open_:
            await self.close(code=CLOSE_NORMAL)
            return
        self.bus = get_bus()
        self.follow = await self.bus.follow(
            user.pk, action_uuid, after_id=lines[-1].id if lines else 0, on_drop=self._too_slow
        )
        for line in lines:
            self.follow.sent.add(line.id)
        self.pump = asyncio.get_running_loop().create_task(self._pump())
        # The action may have ended between the tail and the follow: then no event will say so any more.
        if not await database_sync_to_async(selectors.action_is_open)(action_uuid=action_uuid):
            self.bus.end_follow(self.follow)

    def _too_slow(self) -> None:
        self.pump.cancel()
        asyncio.get_running_loop().create_task(self.close(code=CLOSE_TOO_SLOW, reason="too slow"))

    async def _pump(self) -> None:
        while True:
            item = await self.follow.queue.get()
            if item is ENDED:
                await self.close(code=CLOSE_NORMAL)
                return
            if item is DROPPED:
                return
            await self.send(text_data=item.decode())

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Nothing to receive."""

    async def disconnect(self, code) -> None:
        if self.follow is not None:
            self.bus.unsubscribe(self.follow)
        if self.pump is not None:
            self.pump.cancel()


class EventStream:
    """`GET /api/v1/events/` as Server-Sent Events, for curl and browsers: `id:` and `data:` lines, a comment
    heartbeat every `STREAM_SSE_HEARTBEAT_SECONDS`, resumable with `Last-Event-ID` or `?since=`.

    A plain ASGI application rather than Channels' AsyncHttpConsumer, which ends the response when its handler
    returns and cannot notice a client that went away while it streams.
    """

    async def __call__(self, scope, receive, send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _json(send, 405, {"error": "The event stream is read with GET."}, [(b"allow", b"GET")])
            return
        user = scope.get("user")
        if user is None:
            await _json(
                send,
                401,
                {"error": "Send 'Authorization: ApiKey <username>:<apikey>' (or Basic, or ?user=&token=)."},
                [(b"www-authenticate", b'ApiKey realm="api"')],
            )
            return
        headers = dict(scope.get("headers") or [])
        since = parse_cursor(headers.get(b"last-event-id", b"").decode("latin-1") or None)
        if since is None:
            since = parse_cursor(query_params(scope).get("since"))
        bus = get_bus()
        pump: asyncio.Task | None = None

        def too_slow() -> None:
            pump.cancel()

        subscription = await bus.subscribe(user.pk, on_drop=too_slow)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        loop = asyncio.get_running_loop()
        pump = loop.create_task(self._pump(subscription, since, send))
        gone = loop.create_task(self._until_disconnect(receive))
        try:
            # Whichever ends first: the client leaving, or the pump (dropped for being too slow).
            await asyncio.wait([pump, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            bus.unsubscribe(subscription)
            for task in (pump, gone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @staticmethod
    async def _until_disconnect(receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _pump(self, subscription: Subscription, since: int | None, send) -> None:
        async def send_event(sequence: int, message: bytes) -> None:
            body = b"id: %d\ndata: %s\n\n" % (sequence, message)
            await send({"type": "http.response.body", "body": body, "more_body": True})

        last = await replay(subscription, since, send_event) if since is not None else 0
        heartbeat = settings.STREAM_SSE_HEARTBEAT_SECONDS
        while True:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), timeout=heartbeat)
            except TimeoutError:
                await send({"type": "http.response.body", "body": b": heartbeat\n\n", "more_body": True})
                continue
            if item is DROPPED:
                return
            sequence, message = item
            if sequence > last:
                await send_event(sequence, message)


async def _json(send, status: int, body: dict, headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


async def health(scope, receive, send) -> None:
    """`/healthz` of the stream server: 200 while its event loop answers."""
    await _json(send, 200, {"status": "ok"})


async def not_found(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4404})
        return
    await _json(send, 404, {"error": "Not found. The stream serves /v1/events, /v1/action/<uuid>/logs/ and SSE."})
