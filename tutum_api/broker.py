"""The embedded default's broker: kombu's SQLAlchemy transport on a SQLite file, made so it cannot stop a worker.

kombu's filesystem transport let a worker read a message file another process had created but not yet written
(celery/kombu#1551): the JSONDecodeError escaped `drain_events` and Celery's worker died with "Unrecoverable
error". Here a message is a row, committed in the transaction that inserts it, so no reader can see half of one.
What this module changes in kombu's SQLAlchemy transport:

- **WAL, one writer at a time, waits instead of errors.** SQLite runs in WAL mode (readers never block the
  writer), `synchronous=NORMAL` (no fsync per message; WAL stays consistent after a crash, and a message lost
  to a power cut is a hint the engine's sweep re-derives), and a busy timeout so a publisher waits for the lock
  rather than failing. A consumer takes the write lock up front (`BEGIN IMMEDIATE`): a lock upgrade half-way
  through a transaction fails at once in SQLite, whatever the timeout.
- **Consumed rows are deleted.** kombu marks a delivered row invisible and never deletes it (nor ever makes it
  visible again: the virtual transport redelivers unacknowledged messages from memory, re-publishing them), so
  the table only grows. Here the row is deleted in the transaction that takes it; delivery semantics are
  unchanged. Invisible rows left by kombu's own transport are deleted when the engine is opened.
- **An undecodable message is moved aside, never raised.** A row whose payload is not UTF-8 JSON, or not an
  envelope kombu can deliver, or whose JSON body does not parse, is moved to `kombu_message_undecodable` (its
  row id, queue, raw payload and the error, kept for inspection), logged with its row id, and the next message
  is delivered. A message lost this way is only a hint: the engine's sweep re-enqueues what it would have done.
- **Polls are reads.** An empty poll is one indexed SELECT with no lock; queue ids are cached per channel.
- **Batches are one transaction.** Messages published inside kombu's `Producer.batch()` (a reconcile's node
  steps) are inserted together on flush: one commit instead of one per message, and none visible before the last.
- **Engine per process.** The engine cache is dropped in a forked child, which must not share the parent's
  SQLite connections.

Settings select it with `CELERY_BROKER_TRANSPORT = "tutum_api.broker:Transport"` for any `sqla+` broker URL.
Redis stays the production broker.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from queue import Empty

from kombu.exceptions import BatchPublishError
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import sessionmaker

logger = logging.getLogger(__name__)

#: How long a SQLite writer waits for the lock before the operation fails (a publisher then retries, a consumer
#: reconnects). Writers hold it for a millisecond or so; seconds of waiting mean something else is wrong.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Undecodable rows moved aside in one `_get` before it reports the queue empty for this poll, so a table full
#: of garbage cannot hold the consumer in one call for long.
MAX_UNDECODABLE_PER_GET = 100
#: Transport options that belong to kombu or to this module, not to `sqlalchemy.create_engine()`.
_NOT_ENGINE_OPTIONS = (
    "queue_tablename",
    "message_tablename",
    "dead_letter_tablename",
    "polling_interval",
    "callback",
    "errback",
    "max_retries",
    "interval_start",
    "interval_step",
    "interval_max",
    "retry_errors",
)
#: Only JSON bodies are test-decoded: other content types are refused by Celery's `accept_content` anyway, and
#: decoding, say, a pickle here would run it.
_CHECKED_CONTENT_TYPES = frozenset({"application/json"})


class UndecodableMessage(ValueError):
    """A broker row that cannot become a kombu message."""


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class Channel(kombu_sqlalchemy.Channel):
    """kombu's SQLAlchemy channel with delete-on-get, dead-lettering of undecodable rows and SQLite tuning."""

    #: Engines by URL, this process only (see `_forget_engines_after_fork`); kombu's own cache is shared with
    #: its stock channel, which creates engines without our options.
    _engines: dict = {}
    _engines_lock = threading.RLock()

    def __init__(self, connection, **kwargs):
        self._queue_ids: dict[str, int] = {}
        super().__init__(connection, **kwargs)

    def _configure_entity_tablenames(self, opts):
        super()._configure_entity_tablenames(opts)
        self.dead_letter_tablename = opts.get("dead_letter_tablename", "kombu_message_undecodable")

    # Engine -----------------------------------------------------------------------------------------------------

    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {key: value for key, value in conninfo.transport_options.items() if key not in _NOT_ENGINE_OPTIONS}
        engine = create_engine(conninfo.hostname, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _open(self):
        hostname = self.connection.client.hostname
        found = self._engines.get(hostname)
        if found is not None:
            return found
        with self._engines_lock:
            if hostname in self._engines:
                return self._engines[hostname]
            engine = self._engine_from_config()
            self._create_tables(engine)
            self._engines[hostname] = (engine, sessionmaker(bind=engine))
            return self._engines[hostname]

    def _create_tables(self, engine) -> None:
        """kombu's tables and ours, if missing; kombu's leftover invisible (delivered) rows deleted.

        Every process of `make run` opens the broker at about the same time on a fresh file; on SQLite the
        exclusive transaction makes one of them create the tables while the others wait, instead of two
        CREATE TABLEs racing and one failing.
        """
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            kombu_sqlalchemy.metadata.create_all(connection)
            self.dead_letter_table.metadata.create_all(connection)
            connection.execute(delete(self.message_table).where(self.message_table.c.visible.is_(False)))
            connection.commit()

    @property
    def engine(self):
        return self._open()[0]

    @property
    def message_table(self) -> Table:
        return self.message_cls.__table__

    @property
    def queue_table(self) -> Table:
        return self.queue_cls.__table__

    @property
    def dead_letter_table(self) -> Table:
        return _dead_letter_table(self.dead_letter_tablename)

    # Queues -----------------------------------------------------------------------------------------------------

    def _queue_id(self, queue: str) -> int:
        """The queue's row id, creating the row if needed (a concurrent creation by another process is fine)."""
        queue_id = self._queue_ids.get(queue)
        if queue_id is not None:
            return queue_id
        table = self.queue_table
        with self.engine.connect() as connection:
            queue_id = connection.execute(select(table.c.id).where(table.c.name == queue)).scalar()
            if queue_id is None:
                try:
                    connection.execute(insert(table).values(name=queue))
                    connection.commit()
                except IntegrityError:  # another process created it first; its row is as good as ours
                    connection.rollback()
                queue_id = connection.execute(select(table.c.id).where(table.c.name == queue)).scalar_one()
        self._queue_ids[queue] = queue_id
        return queue_id

    def _new_queue(self, queue, **kwargs):
        self._queue_id(queue)

    # Messages ---------------------------------------------------------------------------------------------------

    def _put(self, queue, payload, _publish_batch: PublishBatch | None = None, **kwargs):
        row = {
            "queue_id": self._queue_id(queue),
            "payload": json.dumps(payload),
            "visible": True,
            "version": 1,
            "timestamp": datetime.datetime.now(),
        }
        if _publish_batch is not None:
            _publish_batch.add(row)
        else:
            self._insert([row])

    def _insert(self, rows: list[dict]) -> None:
        """Messages stored in one transaction: a consumer sees all of them or none."""
        with self.engine.connect() as connection:
            connection.execute(insert(self.message_table), rows)
            connection.commit()

    def create_publish_batch(self, max_size: int) -> PublishBatch:
        """What kombu's `Producer.batch()` publishes through (a reconcile's node steps: one insert, one commit)."""
        return PublishBatch(self, max_size)

    def _get(self, queue):
        queue_id = self._queue_id(queue)
        table = self.message_table
        waiting = select(table.c.id).where(table.c.queue_id == queue_id, table.c.visible.is_(True)).limit(1)
        sqlite = self.engine.dialect.name == "sqlite"
        # SQLite stores what it was given, so a damaged row may not even be UTF-8: read bytes, decode here.
        payload_column = cast(table.c.payload, LargeBinary) if sqlite else table.c.payload
        oldest = (
            select(table.c.id, payload_column)
            .where(table.c.queue_id == queue_id, table.c.visible.is_(True))
            .order_by(table.c.id)
            .limit(1)
        )
        if not sqlite:
            oldest = oldest.with_for_update(skip_locked=True)
        with self.engine.connect() as connection:
            # A lock-free read first: most polls find nothing, and they must not queue up for the write lock.
            if connection.execute(waiting).first() is None:
                raise Empty()
            connection.rollback()
            for _ in range(MAX_UNDECODABLE_PER_GET):
                try:
                    if sqlite:
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    row = connection.execute(oldest).first()
                    if row is None:
                        raise Empty()
                    message_id, raw = row
                    try:
                        payload = self._decode(raw)
                    except UndecodableMessage as error:
                        self._move_aside(connection, message_id=message_id, queue=queue, raw=raw, error=error)
                        connection.commit()
                        logger.error(
                            "broker: message row %s of queue %s cannot be decoded (%s); moved to table %s, "
                            "the worker goes on",
                            message_id,
                            queue,
                            error,
                            self.dead_letter_tablename,
                        )
                        continue
                    connection.execute(delete(table).where(table.c.id == message_id))
                    connection.commit()
                    return payload
                finally:
                    # Nothing after a commit; after an error or Empty, the lock is released at once.
                    connection.rollback()
        raise Empty()

    def _decode(self, raw) -> dict:
        """The message envelope of a row, or UndecodableMessage saying why not (never another exception)."""
        try:
            payload = json.loads(bytes_to_str(raw))
            delivery_info = payload["properties"]["delivery_info"]
            # Where a message rejected or left unacknowledged is put back (kombu's `_restore`).
            if not isinstance(delivery_info, dict) or not {"exchange", "routing_key"} <= delivery_info.keys():
                raise ValueError(f"delivery_info without exchange and routing_key: {delivery_info!r}")
            # What kombu does with the envelope on delivery, tried here where a failure costs only this row.
            message = self.Message(payload, channel=self)
            if message.errors:
                raise ValueError(f"body: {message.errors[0][1]!r}")
            if message.content_type in _CHECKED_CONTENT_TYPES:
                json.loads(message.body)
        except Exception as error:  # anything a damaged row can raise: it is the row, not the worker, that is bad
            raise UndecodableMessage(f"{type(error).__name__}: {error}") from error
        return payload

    def _move_aside(self, connection, *, message_id: int, queue: str, raw, error: Exception) -> None:
        raw_bytes = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        connection.execute(
            insert(self.dead_letter_table).values(
                message_id=message_id,
                queue=queue,
                payload=raw_bytes,
                error=str(error)[:2000],
                moved_at=datetime.datetime.now(),
            )
        )
        connection.execute(delete(self.message_table).where(self.message_table.c.id == message_id))

    def _size(self, queue):
        table = self.message_table
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.queue_id == self._queue_id(queue), table.c.visible.is_(True))
            ).scalar_one()

    def _purge(self, queue):
        table = self.message_table
        with self.engine.connect() as connection:
            count = connection.execute(delete(table).where(table.c.queue_id == self._queue_id(queue))).rowcount
            connection.commit()
        return count


class PublishBatch:
    """Messages a producer publishes inside `batch()`, inserted in one transaction on flush (exit, or `max_size`).

    The interface kombu's `Producer.batch()` expects of a transport (its Redis transport buffers a pipeline the same
    way). A failed flush stored none of its messages; it raises kombu's BatchPublishError all the same, which is
    what callers of `batch()` handle.
    """

    def __init__(self, channel: Channel, max_size: int) -> None:
        self.channel = channel
        self.max_size = max_size
        self.rows: list[dict] = []
        self._usable = True

    def publish(self, message, **kwargs):
        if not self._usable:
            raise RuntimeError("SQLite publish batch is closed or aborted")
        result = self.channel.basic_publish(message, _publish_batch=self, **kwargs)
        if len(self.rows) >= self.max_size:
            self.flush()
        return result

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        try:
            self.channel._insert(rows)
        except Exception as error:
            self._usable = False
            message = f"SQLite publish batch of {len(rows)} message(s) failed; none was stored"
            raise BatchPublishError(message) from error

    def discard(self) -> None:
        self._usable = False
        self.rows = []

    def close(self) -> None:
        self._usable = False


_dead_letter_metadata = MetaData()


def _dead_letter_table(name: str) -> Table:
    found = _dead_letter_metadata.tables.get(name)
    if found is not None:
        return found
    return Table(
        name,
        _dead_letter_metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("message_id", Integer, nullable=False, doc="the row id it had in the message table"),
        Column("queue", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False, doc="exactly what was stored"),
        Column("error", Text, nullable=False),
        Column("moved_at", DateTime, nullable=False),
        sqlite_autoincrement=True,
    )


class Transport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport with the channel above.

    Every database error (and a wait for a pooled connection that timed out) counts as a connection error, so a
    broker problem makes Celery's consumer reconnect (and a publisher retry) instead of ending the worker with
    "Unrecoverable error".
    """

    Channel = Channel
    connection_errors = (OperationalError, DatabaseError, PoolTimeoutError)


def _forget_engines_after_fork() -> None:
    # The parent's pooled SQLite connections must not be used (nor closed) by the child: drop them unclosed.
    for engine, _ in Channel._engines.values():
        engine.dispose(close=False)
    Channel._engines.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)
