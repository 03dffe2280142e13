"""The embedded default's broker (tutum_api/broker.py): a SQLite table that never hands a worker half a message,
deletes what was consumed, and moves an undecodable row aside instead of taking the worker down."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from kombu import Connection

from bench import broker as broker_bench
from bench.soak import SOAK_ENV, StackClient, instance_problems, wait_converged
from tests.support.engine import ROOT
from tests.support.stack import RunStack, wait_for_output
from tutum_api.broker import Transport

# `make run`'s own stack (SQLite, embedded broker): the PostgreSQL pass of `make test` leaves it out.
pytestmark = pytest.mark.stack

_PROPERTIES = {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "q"}}
#: What a damaged or half-written row can hold, each a different way of failing to become a message.
UNDECODABLE_PAYLOADS = {
    "empty (created, not yet written)": b"",
    "truncated JSON": b'{"body": "eyJh", "properties": {"delivery_tag"',
    "not UTF-8": b"\xff\xfe\x00garbage",
    "JSON but not an envelope": b"[1, 2, 3]",
    "envelope without properties": b'{"body": "e30=", "content-type": "application/json"}',
    "delivery info kombu cannot put back": json.dumps(
        {"body": "e30=", "properties": {"delivery_tag": "x", "body_encoding": "base64", "delivery_info": {}}}
    ).encode(),
    "body that is not base64": json.dumps({"body": "YQ", "properties": {**_PROPERTIES, "delivery_tag": "y"}}).encode(),
    "JSON body that does not parse": json.dumps(
        {
            "body": "bm90IGpzb24=",  # "not json"
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {},
            "properties": {**_PROPERTIES, "delivery_tag": "z"},
        }
    ).encode(),
}


def _insert_raw(database: Path, queue: str, payload: bytes) -> int:
    """A row written behind kombu's back, as a damaged disk or a buggy writer would leave it."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        queue_id = connection.execute("SELECT id FROM kombu_queue WHERE name = ?", (queue,)).fetchone()[0]
        cursor = connection.execute(
            "INSERT INTO kombu_message (queue_id, visible, payload, version) VALUES (?, 1, ?, 1)", (queue_id, payload)
        )
        connection.commit()
        return cursor.lastrowid
    finally:
        connection.close()


def _rows(database: Path, sql: str, *params) -> list[tuple]:
    connection = sqlite3.connect(database, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def test_the_embedded_default_is_the_sqlite_transport_in_wal_mode(tmp_path):
    script = (
        "from tutum_api.celery import app\n"
        "with app.connection_for_write() as connection:\n"
        "    with connection.SimpleQueue('probe') as queue:\n"
        "        queue.put({'n': 1})\n"
        "    print(app.conf.broker_url, type(connection.transport).__module__, type(connection.transport).__name__,"
        " connection.transport.polling_interval)\n"
    )
    env = broker_bench.broker_env(tmp_path, None)
    answer = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    url, module, name, polling_interval = answer.stdout.split()
    database = tmp_path / "broker.sqlite3"
    assert url == f"sqlite:///{database}"
    assert (module, name) == ("tutum_api.broker", "Transport")
    assert float(polling_interval) <= 0.1
    assert _rows(database, "PRAGMA journal_mode") == [("wal",)]
    assert len(_rows(database, "SELECT id FROM kombu_message")) == 1


def test_a_consumed_message_is_deleted_not_kept(tmp_path):
    database = tmp_path / "broker.sqlite3"
    with Connection(f"sqlite:///{database}", transport=Transport) as connection, connection.SimpleQueue("q") as queue:
        for number in range(5):
            queue.put({"n": number})
        assert len(_rows(database, "SELECT id FROM kombu_message")) == 5
        received = []
        for _ in range(5):
            message = queue.get(timeout=2)
            received.append(message.payload["n"])
            message.ack()
    assert received == [0, 1, 2, 3, 4]
    assert _rows(database, "SELECT id FROM kombu_message") == []


def test_a_batch_of_messages_is_stored_in_one_transaction_on_flush(tmp_path):
    database = tmp_path / "broker.sqlite3"
    with Connection(f"sqlite:///{database}", transport=Transport) as connection:
        queue = connection.SimpleQueue("q")
        producer = connection.Producer()
        with producer.batch():
            for number in range(50):
                producer.publish({"n": number}, routing_key="q")
            # Nothing is visible before the batch is flushed (the Redis pipeline behaves the same).
            assert _rows(database, "SELECT count(*) FROM kombu_message") == [(0,)]
        assert _rows(database, "SELECT count(*) FROM kombu_message") == [(50,)]
        received = []
        for _ in range(50):
            message = queue.get(timeout=2)
            received.append(message.payload["n"])
            message.ack()
        queue.close()
    assert received == list(range(50))


def test_an_undecodable_row_is_moved_aside_logged_and_the_next_message_delivered(tmp_path, caplog):
    database = tmp_path / "broker.sqlite3"
    with Connection(f"sqlite:///{database}", transport=Transport) as connection, connection.SimpleQueue("q") as queue:
        queue.put({"n": "before"})
        bad_ids = {_insert_raw(database, "q", payload): what for what, payload in UNDECODABLE_PAYLOADS.items()}
        queue.put({"n": "after"})
        with caplog.at_level(logging.ERROR, logger="tutum_api.broker"):
            received = []
            for _ in range(2):
                message = queue.get(timeout=2)
                received.append(message.payload["n"])
                message.ack()
            with pytest.raises(queue.Empty):
                queue.get(timeout=0.3)
    assert received == ["before", "after"]
    aside = _rows(database, "SELECT message_id, queue, payload, error FROM kombu_message_undecodable ORDER BY id")
    assert [row[0] for row in aside] == sorted(bad_ids)
    # Kept byte for byte, with the reason, for whoever inspects it.
    assert [bytes(row[2]) for row in aside] == list(UNDECODABLE_PAYLOADS.values())
    assert all(row[1] == "q" and row[3] for row in aside)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for message_id in bad_ids:
        assert f"message row {message_id} of queue q cannot be decoded" in logged
    assert _rows(database, "SELECT id FROM kombu_message") == []


def test_concurrent_publishers_in_several_processes_never_produce_a_decode_error(tmp_path):
    run = broker_bench.run_transport("sqlite", None, var_dir=tmp_path, tasks=1200, publishers=4, timeout=90)
    assert run.problems == []
    assert not run.worker_crashed
    assert (run.done, run.distinct_done) == (1200, 1200)
    assert "cannot be decoded" not in run.worker_log
    assert "Unrecoverable error" not in run.worker_log
    database = tmp_path / "broker.sqlite3"
    assert _rows(database, "SELECT count(*) FROM kombu_message_undecodable") == [(0,)]
    assert _rows(database, "SELECT count(*) FROM kombu_message") == [(0,)]


def _workers(stack: RunStack) -> list[psutil.Process]:
    """The Celery worker processes: the children of runstack's `manage.py worker` (WORKER_PROCESSES of them)."""
    children = psutil.Process(stack.process.pid).children()
    supervisor = next(child for child in children if "worker" in child.cmdline())
    workers = [child for child in supervisor.children() if "celery" in child.cmdline()]
    assert workers, "manage.py worker should have started its Celery workers"
    return sorted(workers, key=lambda worker: worker.pid)


def _signal_all(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        process.send_signal(signum)


def _unlocked(database: Path) -> bool:
    """Whether a writer could take `database`'s write lock now (nobody, a paused worker included, holds it)."""
    connection = sqlite3.connect(database, timeout=0.5, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def test_a_corrupted_message_does_not_stop_a_real_worker_and_the_sweep_converges_the_cluster(tmp_path):
    env = {"ENGINE_SWEEP_INTERVAL": SOAK_ENV["ENGINE_SWEEP_INTERVAL"]}
    with RunStack(var_dir=tmp_path / "stack", env=env) as stack:
        client = StackClient(stack.url, stack.auth_header)
        try:
            _corrupt_a_scale_and_watch_it_converge(stack, client)
        finally:
            client.close()
    console = stack.output()
    assert "Unrecoverable error" not in console
    assert "exited with code" not in console


def _corrupt_a_scale_and_watch_it_converge(stack: RunStack, client: StackClient) -> None:
    uuid = client.create_cluster("corrupted", 2)
    assert wait_converged(client, stack.var_dir, live=[uuid], terminated=[], timeout=60) == []
    workers = _workers(stack)
    broker = stack.var_dir / "broker.sqlite3"
    # Pause every worker (none holding a lock on either database) so the scale's message waits in the table.
    for _ in range(20):
        _signal_all(workers, signal.SIGSTOP)
        if _unlocked(broker) and _unlocked(stack.var_dir / "db.sqlite3"):
            break
        _signal_all(workers, signal.SIGCONT)
        time.sleep(0.3)
    else:
        pytest.fail("a worker always held a database lock")
    try:
        assert client.scale(uuid, 4).status_code == 202
        reconcile = [
            message_id
            for message_id, payload in _rows(broker, "SELECT id, payload FROM kombu_message")
            if "nodeclusters.reconcile_node_cluster" in payload
        ]
        assert reconcile, "the scale's reconcile message should be waiting in the broker table"
        # Cut short, as a half-written message is: what the filesystem transport could hand a worker.
        connection = sqlite3.connect(broker, timeout=30)
        connection.execute("UPDATE kombu_message SET payload = substr(payload, 1, 40)")
        connection.commit()
        connection.close()
        empty_id = _insert_raw(broker, "celery", b"")
    finally:
        _signal_all(workers, signal.SIGCONT)
    wait_for_output(stack, rf"message row {empty_id} of queue celery cannot be decoded", timeout=30)
    aside = {row[0] for row in _rows(broker, "SELECT message_id FROM kombu_message_undecodable")}
    assert set(reconcile) | {empty_id} <= aside
    # The lost reconcile is re-derived by the sweep: the cluster reaches 4 nodes and no instance leaks.
    assert wait_converged(client, stack.var_dir, live=[uuid], terminated=[], timeout=90) == []
    assert client.cluster(uuid)["current_num_nodes"] == 4
    assert instance_problems(stack.var_dir / "db.sqlite3") == []
    # The same worker processes did all of it: none exited and was restarted.
    assert all(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)
    assert [worker.pid for worker in _workers(stack)] == [worker.pid for worker in workers]
