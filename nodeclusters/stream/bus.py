"""The stream server's event bus: one per process, it reads the outbox and fans events out to open connections.

One loop per process sequences committed events (see `services.events.events_sequence`), reads those past the
last one it dispatched and hands each to the bounded queue of every connection of its owner. It wakes on a Redis
hint where there is one and every `STREAM_POLL_INTERVAL` anyway, so a lost hint or a Redis outage only delays
events. Its queries do not depend on how many sockets are open; an idle socket costs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import orjson
from channels.db import database_sync_to_async
from django.conf import settings

from nodeclusters.choices import ACTION_FINAL_STATES, EventType
from nodeclusters.models import ActionLogLine, Event
from nodeclusters.selectors import EVENT_FIELDS
from nodeclusters.services.events import events_pending, events_sequence, events_sequence_all, hint_channel
from nodeclusters.wire.dates import format_rfc2822

logger = logging.getLogger(__name__)

#: Put in a queue in place of its messages when the connection fell too far behind: the pump then closes it.
DROPPED = object()
#: Put in a followed action log's queue once the action has ended and its last lines were queued.
ENDED = object()

_BATCH = 1000


def event_message(row: dict) -> bytes:
    """An event as the clients receive it: Tutum's five fields, plus `uuid`, `datetime` and the cursor `id`."""
    return orjson.dumps(
        {
            "type": row["type"],
            "action": row["action"],
            "parents": row["parents"],
            "resource_uri": row["resource_uri"],
            "state": row["state"],
            "uuid": str(row["object_uuid"]),
            "datetime": format_rfc2822(row["created_at"]),
            "id": row["sequence"],
        }
    )


def log_message(line) -> bytes:
    """An action log line as Tutum's clients expect it."""
    return orjson.dumps({"type": "log", "log": line.message, "timestamp": int(line.created_at.timestamp())})


class Subscription:
    """One connection's place on the bus: a bounded queue of (sequence, message) the connection's pump drains."""

    def __init__(self, owner_id: int, *, on_drop=None) -> None:
        self.owner_id = owner_id
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.STREAM_QUEUE_SIZE)
        self.dropped = False
        self.on_drop = on_drop

    def offer(self, item) -> None:
        """Queue an item without waiting; a connection that cannot keep up is dropped, never allowed to grow.

        Its pump is most likely stuck sending to a client that stopped reading, so it is told directly
        (`on_drop`) rather than through the queue it is not reading.
        """
        if self.dropped:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(DROPPED)
            if self.on_drop is not None:
                self.on_drop()


class LogFollow(Subscription):
    """A followed action log: new lines of one action until it ends."""

    def __init__(self, owner_id: int, action_uuid, *, after_id: int, on_drop=None) -> None:
        super().__init__(owner_id, on_drop=on_drop)
        self.action_uuid = action_uuid
        self.first_id = after_id
        self.last_id = after_id
        self.sent: set[int] = set()
        self.ending = False
        self.ended = False

    def offer_line(self, line) -> None:
        if line.id in self.sent or self.ended:
            return
        self.sent.add(line.id)
        self.last_id = max(self.last_id, line.id)
        self.offer(log_message(line))


class EventBus:
    """Reads the outbox and dispatches to subscriptions; started on a process's first connection."""

    def __init__(self) -> None:
        self.subscriptions: dict[int, set[Subscription]] = defaultdict(set)
        self.follows: dict[str, set[LogFollow]] = defaultdict(set)
        self.position: int | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- connections ---------------------------------------------------------------------------------------------

    async def subscribe(self, owner_id: int, *, on_drop=None) -> Subscription:
        await self.start()
        subscription = Subscription(owner_id, on_drop=on_drop)
        self.subscriptions[owner_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if isinstance(subscription, LogFollow):
            followers = self.follows.get(str(subscription.action_uuid))
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self.follows[str(subscription.action_uuid)]
            return
        subscribers = self.subscriptions.get(subscription.owner_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self.subscriptions[subscription.owner_id]

    async def follow(self, owner_id: int, action_uuid, *, after_id: int, on_drop=None) -> LogFollow:
        await self.start()
        follow = LogFollow(owner_id, action_uuid, after_id=after_id, on_drop=on_drop)
        self.follows[str(action_uuid)].add(follow)
        self.wake()
        return follow

    def end_follow(self, follow: LogFollow) -> None:
        """The action has ended: queue its last lines, then the end (on the next look at the outbox)."""
        follow.ending = True
        self.wake()

    # -- the loop ------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    async def start(self) -> None:
        if self.running:
            return
        self._wake = asyncio.Event()
        if self.position is None:
            # Live from here: what committed before this server started is history, for clients resuming by cursor.
            self.position = await database_sync_to_async(events_sequence_all)()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="event-bus")]
        if settings.STREAM_REDIS_URL:
            self._tasks.append(loop.create_task(self._listen(), name="event-bus-hints"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=settings.STREAM_POLL_INTERVAL)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # the database restarting, say: look again at the next interval
                logger.exception("the event bus could not read the outbox; trying again")

    async def tick(self) -> None:
        """One look at the outbox: sequence what committed, dispatch what is new, follow action logs."""
        while True:
            # The follows are read here, on the loop's thread; the query runs in a worker thread.
            follows = [follow for followers in self.follows.values() for follow in followers if not follow.ended]
            rows, lines, finals = await database_sync_to_async(self._read)(follows)
            for row in rows:
                self._dispatch(row)
            for line in lines:
                for follow in self.follows.get(str(line.action_id), ()):
                    follow.offer_line(line)
            for follow in finals:
                follow.ended = True
                follow.offer(ENDED)
            if len(rows) < _BATCH:
                return

    def _read(self, follows: list[LogFollow]) -> tuple[list[dict], list, list[LogFollow]]:
        if events_pending():
            events_sequence()
        rows = list(
            Event.objects.filter(sequence__gt=self.position).order_by("sequence").values(*EVENT_FIELDS)[:_BATCH]
        )
        if rows:
            self.position = rows[-1]["sequence"]
        lines, finals = [], []
        if follows:
            # Lines can commit out of id order (two steps writing at once), so each follow keeps the ids it sent,
            # and an ending follow reads its action's whole log past its start once more.
            ending = [follow for follow in follows if follow.ending]
            since = min(follow.last_id for follow in follows)
            lines = list(
                ActionLogLine.objects.filter(action_id__in={follow.action_uuid for follow in follows}, id__gt=since)
                .only("id", "action_id", "created_at", "message")
                .order_by("id")
            )
            for follow in ending:
                lines += ActionLogLine.objects.filter(action_id=follow.action_uuid, id__gt=follow.first_id).only(
                    "id", "action_id", "created_at", "message"
                )
                lines.sort(key=lambda line: line.id)
            finals = ending
        return rows, lines, finals

    def _dispatch(self, row: dict) -> None:
        message = None
        for subscription in self.subscriptions.get(row["owner_id"], ()):
            if message is None:
                message = event_message(row)  # encoded once, whatever the number of sockets
            subscription.offer((row["sequence"], message))
        if row["type"] == EventType.ACTION and row["state"] in ACTION_FINAL_STATES:
            for follow in self.follows.get(str(row["object_uuid"]), ()):
                self.end_follow(follow)

    async def _listen(self) -> None:
        """Wake the loop on every hint published on Redis; reconnect (with backoff) when Redis goes away."""
        import redis.asyncio as redis

        delay = 0.5
        while True:
            client = redis.Redis.from_url(settings.STREAM_REDIS_URL, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(hint_channel())
                    delay = 0.5
                    self.wake()  # anything announced while we were not listening
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("event hints from Redis lost (%s); polling the outbox until it is back", error)
                await asyncio.sleep(delay)  # a reconnect backoff, not a stand-in for work
                delay = min(delay * 2, 10)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


_bus: EventBus | None = None


def get_bus() -> EventBus:
    """The bus of the running event loop: one per process in a server (tests run one loop after another)."""
    global _bus
    loop = asyncio.get_running_loop()
    if _bus is None or _bus.loop is not loop:
        _bus = EventBus()
        _bus.loop = loop
    return _bus
