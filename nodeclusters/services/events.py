"""Events of the Stream API: written in the caller's transaction (the outbox), sequenced after commit, pruned.

Every service and engine step that changes a node cluster, a node or an action records an event here inside the
same transaction, so an event exists exactly when its change does. After commit a hint is published on Redis
(where Redis is configured) so stream servers wake at once; the hint may be lost, the rows may not: stream
servers also look at the outbox on their own every `STREAM_POLL_INTERVAL`.
"""

import datetime
import logging
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from nodeclusters.choices import EventAction, EventType
from nodeclusters.models import Action, Event, Node, NodeCluster
from nodeclusters.wire import uris

logger = logging.getLogger(__name__)


def hint_channel() -> str:
    """The Redis channel on which committed changes are announced (the payload is empty: it is only a wake-up).

    Named after the database number too: pub/sub ignores it, and two servers (or test runs) sharing one Redis on
    different databases must not wake each other.
    """
    database = urlsplit(settings.STREAM_REDIS_URL).path.strip("/") or "0"
    return f"tutum:events:{database}"


# pg_advisory_xact_lock key of the sequencer ("tutum-ev" in ASCII), so two stream servers never interleave.
_SEQUENCER_LOCK = 0x7475_7475_6D2D_6576 & 0x7FFF_FFFF_FFFF_FFFF


def node_cluster_event(cluster: NodeCluster, action: str = EventAction.UPDATE) -> Event:
    return Event(
        owner_id=cluster.owner_id,
        type=EventType.NODE_CLUSTER,
        action=action,
        object_uuid=cluster.uuid,
        resource_uri=uris.nodecluster_uri(cluster.uuid),
        state=cluster.state,
        parents=[],
    )


def node_event(node: Node, action: str = EventAction.UPDATE, state: str | None = None) -> Event:
    return Event(
        owner_id=node.owner_id,
        type=EventType.NODE,
        action=action,
        object_uuid=node.uuid,
        resource_uri=uris.node_uri(node.uuid),
        state=state or node.state,
        parents=[uris.nodecluster_uri(node.node_cluster_id)] if node.node_cluster_id else [],
    )


def action_event(action: Action, event_action: str = EventAction.UPDATE, state: str | None = None) -> Event:
    return Event(
        owner_id=action.owner_id,
        type=EventType.ACTION,
        action=event_action,
        object_uuid=action.uuid,
        resource_uri=uris.action_uri(action.uuid),
        state=state or action.state,
        parents=[action.object_uri] if action.object_uri else [],
    )


def events_record(events: Iterable[Event]) -> None:
    """Write events in the caller's transaction; announce them once it commits.

    Outside a transaction (autocommit) the insert is its own transaction, which is only right when the change it
    describes has already committed; engine code that changes rows wraps the change and its events in one.
    """
    events = list(events)
    if not events:
        return
    Event.objects.bulk_create(events)
    if settings.STREAM_REDIS_URL and not _hint_registered():
        transaction.on_commit(events_hint)


def event_record(event: Event) -> None:
    events_record([event])


# --- the hint -----------------------------------------------------------------------------------------------------

_hint_clients: dict[str, object] = {}
_hint_paused_until = 0.0


def _hint_registered() -> bool:
    """Whether this transaction already announces its events: one hint per commit is enough."""
    return any(callback is events_hint for _, callback, _ in connection.run_on_commit)


def events_hint() -> None:
    """Wake the stream servers (a Redis PUBLISH); a failure only delays delivery until their next look."""
    global _hint_paused_until
    url = settings.STREAM_REDIS_URL
    if not url or time.monotonic() < _hint_paused_until:
        return
    try:
        client = _hint_clients.get(url)
        if client is None:
            import redis

            client = _hint_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.publish(hint_channel(), b"")
    except Exception as error:  # Redis down: requests must not wait for it on every commit
        _hint_paused_until = time.monotonic() + 5
        logger.warning("could not announce events on Redis (%s); stream servers will find them by polling", error)


# --- sequencing, reading, pruning -----------------------------------------------------------------------------------


def events_pending() -> bool:
    """Whether any committed event still waits for its sequence (one index lookup)."""
    return Event.objects.filter(sequence__isnull=True).exists()


def events_sequence(*, batch: int = 1000) -> int:
    """Give committed, unsequenced events their cursor, in id order; returns how many were sequenced.

    Serialized across processes (an advisory lock on PostgreSQL; SQLite's write lock, taken at BEGIN, elsewhere),
    so sequences are handed out by one sequencer at a time and become visible all together at its commit: a reader
    that has seen sequence N has seen every sequence below N.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEQUENCER_LOCK])
        pending = list(Event.objects.filter(sequence__isnull=True).order_by("id").values_list("id", flat=True)[:batch])
        if not pending:
            return 0
        last = Event.objects.aggregate(last=Max("sequence"))["last"] or 0
        rows = [Event(id=pk, sequence=last + offset) for offset, pk in enumerate(pending, start=1)]
        Event.objects.bulk_update(rows, ["sequence"], batch_size=500)
    return len(rows)


def events_last_sequence() -> int:
    return Event.objects.aggregate(last=Max("sequence"))["last"] or 0


def events_sequence_all() -> int:
    """Sequence everything committed so far (in batches); the last sequence."""
    if events_pending():
        while events_sequence():
            pass
    return events_last_sequence()


def events_prune(*, older_than: datetime.timedelta | None = None) -> int:
    """Delete events past the retention window (`STREAM_RETENTION_SECONDS`); returns how many went."""
    window = older_than or datetime.timedelta(seconds=settings.STREAM_RETENTION_SECONDS)
    # Unsequenced ones too: with no stream server running for a day, nobody can ask for them any more.
    deleted, _ = Event.objects.filter(created_at__lt=timezone.now() - window).delete()
    return deleted
