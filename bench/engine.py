"""Engine speed: how fast real Celery workers converge a cluster or a fleet, and what one reconcile of a big cluster
costs.

    python -m bench.engine [--sizes 10,50,200] [--workers 2 --concurrency 32] [--boot-seconds 2] [--profile]
    python -m bench.engine --fleet [--fleet-layouts 2x16,1x32] [--worker-nice 10] [--timeline]

Part 1, in this process: SQL queries, CPU and wall time of ONE `reconcile_node_cluster` of an already converged
cluster of 100 and of 1,000 Deployed nodes (rows written in bulk). Part 2: two Celery workers (threads pool) on
PostgreSQL and a Redis broker (db 14, flushed first), no beat, the simulated cloud booting in 2 s: a cluster in
`Empty cluster` is scaled 0 -> N and back to 0 through `node_cluster_update`, and each convergence is timed
against one boot time.

`--fleet` instead: 20 users x 5 clusters x 10 nodes deployed at once over HTTP (gunicorn 2 x 4 as `make run`), the
workers started as `make run` starts them (`manage.py worker`; `--fleet-layouts` compares processes x threads), Celery
beat beside them, a simulated cloud booting in 5 s and the project's ENGINE_POLL_INTERVAL: the convergence in boot
times, and the list page's latency (probed 20 times a second) idle, during the burst of deploy requests and while
the engine converges the fleet after it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import os
import pstats
import re
import statistics
import sys
import time
import uuid as uuid_module
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import support
from bench.api import MAKE_RUN_WEB

#: The workers' broker, flushed before and after (BENCH_REDIS_URL moves it, e.g. beside another run).
BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CONTEXT_PATH = "/bench/engine/"
#: What `make run` starts (runstack's `manage.py worker`): worker processes x threads each, and their nice.
DEFAULT_LAYOUT = (2, 16)
DEFAULT_WORKER_NICE = 10
#: What `make run` serves the API with (runstack's gunicorn): workers x threads each.
DEFAULT_WEB = MAKE_RUN_WEB


# --- part 1: one reconcile -------------------------------------------------------------------------------------


def converged_cluster(*, nodes: int):
    """A Deployed cluster of `nodes` Deployed nodes whose last action has ended, as the engine leaves it."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from nodeclusters.choices import ActionState, NodeClusterState
    from nodeclusters.models import Action, Node, NodeCluster, NodeType, Region
    from nodeclusters.wire import uris

    owner, _ = get_user_model().objects.get_or_create(username="bench-engine")
    region = Region.objects.get(provider__name="digitalocean", name="lon1")
    node_type = NodeType.objects.get(provider__name="digitalocean", name="1gb")
    now = timezone.now()
    cluster = NodeCluster.objects.create(
        owner=owner,
        name=f"converged-{nodes}",
        state=NodeClusterState.DEPLOYED,
        node_type=node_type,
        region=region,
        target_num_nodes=nodes,
        deployed_datetime=now,
    )
    action = Action.objects.create(
        owner=owner,
        action="Node Cluster Deploy",
        object_uri=uris.nodecluster_uri(cluster.uuid),
        node_cluster=cluster,
        state=ActionState.SUCCESS,
        start_date=now,
        end_date=now,
        target_num_nodes=nodes,
    )
    NodeCluster.objects.filter(pk=cluster.pk).update(current_action=action)
    Node.objects.bulk_create(
        [
            support.deployed_node(cluster, index, now=now, instance_id=f"sim-{index:012x}", engine_touched_at=now)
            for index in range(nodes)
        ],
        batch_size=2000,
    )
    return cluster


def backend_cpu_seconds() -> float:
    """CPU seconds of this connection's PostgreSQL backend (same machine), so the database's share shows too."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def one_reconcile(cluster_uuid, *, runs: int) -> dict:
    """Queries of one reconcile, and the median wall, client CPU and database CPU over `runs` runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from nodeclusters.reconciler import reconcile_node_cluster

    for _ in range(3):
        reconcile_node_cluster(cluster_uuid)
    with CaptureQueriesContext(connection) as captured:
        result = reconcile_node_cluster(cluster_uuid)
    assert result is not None and not (result.created or result.terminating or result.scheduled), result
    walls, cpus = [], []
    # The kernel counts a process's CPU in 10 ms ticks: the backend's share is only readable over all the runs.
    database_before = backend_cpu_seconds()
    for _ in range(runs):
        cpu_before, wall_before = time.thread_time(), time.perf_counter()
        reconcile_node_cluster(cluster_uuid)
        walls.append(time.perf_counter() - wall_before)
        cpus.append(time.thread_time() - cpu_before)
    database = (backend_cpu_seconds() - database_before) / runs
    statements = [query["sql"] for query in captured.captured_queries]
    return {
        "statements": statements,
        "queries": [sql for sql in statements if sql not in ("BEGIN", "COMMIT")],
        "state": result.state,
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "database": database,
    }


def part_reconcile(*, sizes: list[int], runs: int, profile: bool) -> bool:
    print(f"ONE reconcile of an already converged cluster (in-process, median of {runs} runs):")
    measured = {size: one_reconcile(converged_cluster(nodes=size).uuid, runs=runs) for size in sizes}
    rows = [
        [size, len(m["queries"]), len(m["statements"]), m["wall"] * 1000, m["cpu"] * 1000, m["database"] * 1000]
        for size, m in measured.items()
    ]
    headers = ["nodes", "queries", "+ BEGIN/COMMIT", "wall ms", "CPU ms", "db CPU ms (mean)"]
    print(support.table(headers, rows))
    small, large = measured[sizes[0]], measured[sizes[-1]]
    constant = len(small["queries"]) == len(large["queries"])
    fast = large["wall"] < 0.050
    print(
        f"  {sizes[-1]} vs {sizes[0]} nodes: queries {len(large['queries'])} / {len(small['queries'])} "
        f"({'constant' if constant else 'NOT constant'}), wall x{large['wall'] / small['wall']:.1f}, "
        f"CPU x{large['cpu'] / small['cpu']:.1f}; {sizes[-1]}-node wall {large['wall'] * 1000:.1f} ms "
        f"({'well under' if large['wall'] < 0.025 else 'under' if fast else 'OVER'} the 50 ms target)"
    )
    print(f"  the statements of the {sizes[-1]}-node reconcile (it leaves the cluster {large['state']}):")
    for sql in large["statements"]:
        print(f"    {_shorten(sql)}")
    if profile:
        from nodeclusters.reconciler import reconcile_node_cluster

        cluster_uuid = converged_cluster(nodes=sizes[-1]).uuid
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            reconcile_node_cluster(cluster_uuid)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        print(f"  cProfile of {runs} reconciles of {sizes[-1]} nodes, by own time:")
        print("\n".join("    " + line for line in out.getvalue().splitlines() if line.strip()))
    return constant and fast


# --- part 2: convergence with real workers -----------------------------------------------------------------------


class Workers:
    """Celery workers as tests/support/engine.py starts them: threads pool, no gossip, no mingle; no beat.

    With `as_make_run`, `manage.py worker` instead, exactly as `make run` starts its workers: `count` processes of
    `concurrency` threads each (at `nice`), under that command's own supervision.
    """

    def __init__(
        self, *, env: dict[str, str], count: int, concurrency: int, nice: int = 0, as_make_run: bool = False
    ) -> None:
        self.env, self.count, self.concurrency, self.nice = env, count, concurrency, nice
        self.as_make_run = as_make_run
        self.processes = []
        self.var_dir = Path(env["TUTUM_VAR_DIR"])

    def __enter__(self) -> Workers:
        from tutum_api.celery import app

        if self.as_make_run:
            args = ["django", "worker", "--processes", str(self.count)]
            args += ["--concurrency", str(self.count * self.concurrency), "--nice", str(self.nice)]
            self.processes.append(support.spawn(args, env=self.env, log_path=self.log_path(0)))
        for index in range(0 if self.as_make_run else self.count):
            args = ["celery", "-A", "tutum_api", "worker", "--pool", "threads", "--concurrency", str(self.concurrency)]
            args += ["--loglevel", "INFO", "--hostname", f"bench{index}-{uuid_module.uuid4().hex[:6]}@%h"]
            args += ["--without-gossip", "--without-mingle"]
            self.processes.append(support.spawn(args, env=self.env, log_path=self.log_path(index), nice=self.nice))

        def all_answer() -> bool:
            for index, process in enumerate(self.processes):
                if process.poll() is not None:
                    raise RuntimeError(f"worker {index} exited:\n{support.tail(self.log_path(index))}")
            return len(app.control.ping(timeout=0.5)) >= self.count

        if not support.wait_for(all_answer, timeout=60, interval=0.2):
            self.__exit__()
            raise RuntimeError(f"workers did not answer in 60 s:\n{support.tail(self.log_path(0))}")
        return self

    def log_path(self, index: int) -> Path:
        return self.var_dir / f"worker-{index}.log"

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            support.stop(process)


def reconcile_stats() -> tuple[float, float]:
    """(reconciles run, seconds spent in them) by every worker so far, from the shared Prometheus files."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    count = total = 0.0
    for metric in registry.collect():
        if metric.name == "tutum_reconcile_duration_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
    return count, total


class ActivitySampler:
    """Samples pg_stat_activity of the benchmark's database: how many backends are busy, and which wait on locks."""

    def __init__(self, *, interval: float = 0.1) -> None:
        import threading

        self.interval = interval
        self.samples = 0
        self.active = 0
        self.lock_waits = Counter()
        self.running = Counter()
        self.waits = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity-sampler", daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._cpu_before = psutil.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        after = psutil.cpu_times()
        busy = lambda times: sum(times) - times.idle - getattr(times, "iowait", 0.0)  # noqa: E731
        total = sum(after) - sum(self._cpu_before)
        self.cpu_seconds = busy(after) - busy(self._cpu_before)
        self.cpu_busy = self.cpu_seconds / total if total else float("nan")

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.is_set():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT wait_event_type, query, wait_event FROM pg_stat_activity "
                        "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
                    )
                    rows = cursor.fetchall()
                self.samples += 1
                self.active += len(rows)
                for wait_event_type, query, wait_event in rows:
                    self.waits[f"{wait_event_type or 'CPU'}:{wait_event or ''}"] += 1
                    statement = _shorten(query)
                    if wait_event_type == "Lock":
                        self.lock_waits[statement] += 1
                    elif wait_event_type is None:
                        self.running[statement] += 1
                self._stop.wait(self.interval)
        finally:
            connection.close()

    @property
    def mean_active(self) -> float:
        return self.active / self.samples if self.samples else float("nan")

    @property
    def mean_lock_waits(self) -> float:
        return sum(self.lock_waits.values()) / self.samples if self.samples else float("nan")


def _shorten(sql: str) -> str:
    """A statement with its column list elided, so statements on one table can be told apart by their WHERE."""
    # pg_stat_activity keeps the first 1,024 bytes of a statement, which a full column list can fill.
    sql = re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", " ".join(sql.split()), count=1)
    sql = re.sub(r'"nodeclusters_(\w+)"\.', "", sql)
    return sql[:150]


def converge(cluster, *, target: int, timeout: float, workers: list[psutil.Process]) -> dict:
    """Scale through the service and time the milestones until the cluster has converged on `target`."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from nodeclusters import services
    from nodeclusters.choices import NodeClusterState
    from providers.models import SimulatedInstance

    final_state = NodeClusterState.DEPLOYED if target else NodeClusterState.EMPTY_CLUSTER
    context = services.RequestContext(method="PATCH", path=CONTEXT_PATH, user_agent="bench.engine")
    reconciles_before = reconcile_stats()
    activity = ActivitySampler()
    milestones = {"activity": activity}
    workers_before = support.cpu_seconds(workers)
    with activity:
        started = time.perf_counter()
        started_at = timezone.now()
        services.node_cluster_update(
            node_cluster_uuid=cluster.uuid, owner=cluster.owner, context=context, target_num_nodes=target
        )
        row = _wait_converged(cluster, target=target, final_state=final_state, started=started, timeout=timeout)
        milestones.update(row.pop("milestones"))
    if target:
        # The simulated cloud's own record of when it was asked for each instance: the create phase.
        creates = SimulatedInstance.objects.filter(
            cluster_uuid=str(cluster.uuid), created_at__gte=started_at
        ).aggregate(first=Min("created_at"), last=Max("created_at"))
        if creates["last"] is not None:
            milestones["creates"] = tuple((creates[end] - started_at).total_seconds() for end in ("first", "last"))
    milestones["worker_cpu"] = support.cpu_delta(workers_before, support.cpu_seconds(workers))
    reconciles_after = reconcile_stats()
    count = reconciles_after[0] - reconciles_before[0]
    milestones["reconciles"] = count
    milestones["reconcile_ms"] = (reconciles_after[1] - reconciles_before[1]) * 1000 / count if count else 0.0
    milestones["state"] = row["state"]
    return milestones


def _wait_converged(cluster, *, target: int, final_state: str, started: float, timeout: float) -> dict:
    from django.db.models import Count, Q

    from nodeclusters.choices import NodeState
    from nodeclusters.models import NodeCluster

    live_states = [NodeState.DEPLOYING, NodeState.DEPLOYED, NodeState.TERMINATING]
    milestones = {}
    deadline = started + timeout
    while time.perf_counter() < deadline:
        row = (
            NodeCluster.objects.filter(pk=cluster.pk)
            .annotate(
                deployed=Count("nodes", filter=Q(nodes__state=NodeState.DEPLOYED)),
                live=Count("nodes", filter=Q(nodes__state__in=live_states)),
            )
            .values("state", "deployed", "live")
            .get()
        )
        now = time.perf_counter() - started
        if target and row["live"] >= target:
            milestones.setdefault("rows", now)
        if row["deployed"] == target and row["live"] == target:
            milestones.setdefault("nodes", now)
        if row["state"] == final_state and row["deployed"] == target and row["live"] == target:
            milestones["converged"] = now
            break
        time.sleep(0.05)
    return {**row, "milestones": milestones}


def part_convergence(env: dict[str, str], *, sizes: list[int], workers: int, concurrency: int, boot: float) -> bool:
    import redis
    from django.contrib.auth import get_user_model

    from nodeclusters import services
    from nodeclusters.choices import NodeClusterState
    from nodeclusters.models import NodeCluster, NodeType, Region

    redis.Redis.from_url(BROKER_URL).flushdb()
    owner, _ = get_user_model().objects.get_or_create(username="bench-engine")
    region = Region.objects.select_related("provider").get(provider__name="digitalocean", name="lon1")
    node_type = NodeType.objects.select_related("provider").get(provider__name="digitalocean", name="1gb")
    context = services.RequestContext(method="POST", path=CONTEXT_PATH, user_agent="bench.engine")
    print(
        f"\nconvergence: {workers} Celery workers x {concurrency} threads (threads pool, no beat), simulated cloud "
        f"booting in {boot:g} s, ENGINE_POLL_INTERVAL {env['ENGINE_POLL_INTERVAL']} s, broker {BROKER_URL}"
    )
    print("  0 -> N: PATCH target N on an Empty cluster until Deployed with N nodes up; N -> 0: back to Empty cluster")
    rows = []
    lock_waits = {}
    on_target = True
    with (
        Workers(env=env, count=workers, concurrency=concurrency) as pool,
        support.MemorySampler([process.pid for process in pool.processes], interval=0.2) as memory,
    ):
        pids = [process.pid for process in pool.processes]
        for size in sizes:
            cluster, _ = services.node_cluster_create(
                owner=owner,
                name=f"bench-{size}",
                node_type=node_type,
                region=region,
                context=context,
                target_num_nodes=0,
            )
            services.node_cluster_deploy(node_cluster_uuid=cluster.uuid, owner=owner, context=context)
            ready = support.wait_for(
                lambda c=cluster: NodeCluster.objects.filter(pk=c.pk, state=NodeClusterState.EMPTY_CLUSTER).exists(),
                timeout=30,
            )
            if not ready:
                raise RuntimeError(f"an empty cluster did not settle in 30 s:\n{support.tail(pool.log_path(0))}")
            for target in (size, 0):
                timeout = 30 + size * 0.5
                result = converge(cluster, target=target, timeout=timeout, workers=support.family(pids))
                seconds = result.get("converged")
                ratio = seconds / boot if seconds is not None else float("nan")
                on_target &= seconds is not None and ratio <= 2
                rows.append(
                    [
                        f"{0 if target else size} -> {target}",
                        f"{seconds:.2f}" if seconds is not None else f"TIMEOUT {timeout:.0f} s ({result['state']})",
                        ratio,
                        result.get("rows", float("nan")) if target else float("nan"),
                        "{:.2f}-{:.2f}".format(*result["creates"]) if "creates" in result else "-",
                        result.get("nodes", float("nan")),
                        int(result["reconciles"]),
                        result["reconcile_ms"],
                        result["activity"].cpu_busy * 100,
                        result["worker_cpu"],
                        result["activity"].cpu_seconds,
                        result["activity"].mean_active,
                        result["activity"].mean_lock_waits,
                    ]
                )
                lock_waits[rows[-1][0]] = result["activity"]
    headers = [
        "scale",
        "seconds",
        "/ boot",
        "rows at s",
        "creates at s",
        "nodes done at s",
        "reconciles",
        "ms/reconcile",
    ]
    headers += ["CPU busy %", "worker CPU s", "all CPU s", "active db", "lock-waiting db"]
    print(support.table(headers, rows))
    print("  ms/reconcile includes waiting for the cluster's row lock; active/lock-waiting db: mean backends busy / ")
    print("  waiting on a lock, sampled every 100 ms; CPU busy / all CPU s: the whole machine (2 cores = 100 %);")
    print("  worker CPU s: the Celery processes alone (the rest is mostly PostgreSQL backends). PostgreSQL shows the")
    print("  first 1,024 bytes of a statement, so a long column list hides the rest; a SELECT waiting on a lock is a")
    print("  SELECT ... FOR UPDATE (the reconcile's lock on the cluster row if it lists the cluster's columns).")
    for label, activity in lock_waits.items():
        for what, counter in (("waiting on a lock", activity.lock_waits), ("running on CPU", activity.running)):
            top = counter.most_common(2)
            if top:
                print(f"  {label}, statements {what} (mean backends):")
                for sql, count in top:
                    print(f"    {count / activity.samples:5.2f}  {sql}")
    print(f"  target: each convergence <= 2 boot times ({2 * boot:g} s): {'on target' if on_target else 'OFF target'}")
    print("  " + memory.summary(f"the {workers} worker processes"))
    return on_target


# --- part 3: a fleet converging at once, and the list page meanwhile ---------------------------------------------

#: Where the fleet's users deploy (provider, region, node type), round-robin by user: four provider/region pairs,
#: so the batched poll makes four listings per interval where per-cluster polls made one per cluster.
FLEET_PLACES = (
    ("digitalocean", "lon1", "1gb"),
    ("digitalocean", "nyc3", "1gb"),
    ("aws", "us-east-1", "t2.micro"),
    ("aws", "eu-west-1", "t2.micro"),
)
FLEET_LIST_PATH = "/api/v1/nodecluster/?limit=25"


@dataclass
class Fleet:
    """The fleet's users (name, raw API key) and clusters (owner name, uuid), all `Init` until the burst."""

    users: list[tuple[str, str]]
    clusters: list[tuple[str, str]]
    owner_ids: list[int]


def seed_fleet(*, run: str, users: int, clusters_per_user: int, nodes: int) -> Fleet:
    """`users` users with an API key and `clusters_per_user` clusters of `nodes` nodes each, created in `Init`."""
    from django.contrib.auth import get_user_model

    from nodeclusters import services
    from nodeclusters.models import NodeType, Region

    context = services.RequestContext(method="POST", path=CONTEXT_PATH, user_agent="bench.engine --fleet")
    fleet = Fleet(users=[], clusters=[], owner_ids=[])
    for index in range(users):
        provider, region_name, type_name = FLEET_PLACES[index % len(FLEET_PLACES)]
        region = Region.objects.select_related("provider").get(provider__name=provider, name=region_name)
        node_type = NodeType.objects.select_related("provider").get(provider__name=provider, name=type_name)
        owner = get_user_model().objects.create_user(username=f"fleet-{run}-{index:02d}")
        fleet.users.append((owner.username, services.api_key_create(user=owner, label="bench")[1]))
        fleet.owner_ids.append(owner.pk)
        for number in range(clusters_per_user):
            cluster, _ = services.node_cluster_create(
                owner=owner,
                name=f"{owner.username}-{number}",
                node_type=node_type,
                region=region,
                context=context,
                target_num_nodes=nodes,
            )
            fleet.clusters.append((owner.username, str(cluster.uuid)))
    return fleet


class Beat:
    """Celery beat as `make run` starts it (the sweep every ENGINE_SWEEP_INTERVAL), unless not `enabled`."""

    def __init__(self, *, env: dict[str, str], run: str, enabled: bool) -> None:
        self.env, self.enabled, self.process = env, enabled, None
        self.var_dir = Path(env["TUTUM_VAR_DIR"])
        self.run = run

    def __enter__(self) -> Beat:
        if self.enabled:
            schedule = str(self.var_dir / f"beat-{self.run}")
            args = ["celery", "-A", "tutum_api", "beat", "--loglevel", "INFO", "--schedule", schedule]
            self.process = support.spawn(args, env=self.env, log_path=self.var_dir / f"beat-{self.run}.log")
        return self

    def __exit__(self, *exc_info) -> None:
        support.stop(self.process)


class ListProbe:
    """GET the list page at a fixed rate (open loop: a slow answer does not delay the next request), as each of the
    fleet's users in turn; every answer is kept with the moment it was due.

    The requests go out from a pool of threads, each with one keep-alive connection of the standard library's
    `http.client`: the probe shares the machine with what it measures, and an asyncio client's connection pool cost
    this process more CPU the longer the server's backlog grew (httpx: a third of a core while list pages queued
    behind the deploys), taking it from the server just when it was slowest. Latency counts from when a request
    was due, so a request waiting for a free thread is counted as waiting (no coordinated omission)."""

    THREADS = 64

    def __init__(self, *, url: str, users: list[tuple[str, str]], rate: float) -> None:
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port, self.rate = parts.hostname, parts.port, rate
        self.headers = [{"Authorization": f"ApiKey {name}:{key}"} for name, key in users]
        self.samples: list[tuple[float, float, int | str]] = []  # (due at, seconds, status)
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="list-probe", daemon=True)

    def __enter__(self) -> ListProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="list-probe") as pool:
            due = time.monotonic()
            for number in itertools.count():
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                pool.submit(self._one, due, self.headers[number % len(self.headers)])
                due += 1 / self.rate

    def _one(self, due: float, headers: dict[str, str]) -> None:
        import http.client

        try:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            connection.request("GET", FLEET_LIST_PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                connection.close()
                self._local.connection = None
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            self._local.connection.close()
            self._local.connection = None
        self.samples.append((due, time.monotonic() - due, status))

    def window(self, start: float, end: float) -> tuple[list[float], Counter]:
        """Latencies of the requests asked between `start` and `end` (monotonic), and the unexpected answers."""
        latencies, errors = [], Counter()
        for asked, seconds, status in list(self.samples):
            if start <= asked < end:
                latencies.append(seconds)
                if status != 200:
                    errors[status] += 1
        return latencies, errors


def provider_calls() -> Counter:
    """Driver calls by operation (every provider together) by every process so far, from the Prometheus files."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    calls = Counter()
    for metric in registry.collect():
        if metric.name == "tutum_provider_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    calls[sample.labels["operation"]] += sample.value
    return calls


def _deploy_all(url: str, fleet: Fleet) -> Counter:
    """Every cluster's deploy request at once, each as its owner, each from a thread and connection of its own (as
    the probe's, so that the client costs the machine little); the answers' statuses."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    keys = dict(fleet.users)

    def deploy(owner: str, cluster_uuid: str) -> int | str:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            headers = {"Authorization": f"ApiKey {owner}:{keys[owner]}"}
            connection.request("POST", f"/api/v1/nodecluster/{cluster_uuid}/deploy/", headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException) as error:
            return type(error).__name__
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(fleet.clusters), thread_name_prefix="deploy") as pool:
        return Counter(pool.map(lambda cluster: deploy(*cluster), fleet.clusters))


def _wait_fleet(fleet: Fleet, *, nodes: int, started: float, timeout: float) -> dict:
    """Poll the database until every cluster of the fleet is `Deployed` with all its nodes up; the milestones."""
    from django.db.models import Count, Q

    from nodeclusters.choices import NodeClusterState, NodeState
    from nodeclusters.models import Node, NodeCluster

    total = len(fleet.clusters) * nodes
    live_states = [NodeState.DEPLOYING, NodeState.DEPLOYED, NodeState.TERMINATING]
    milestones = {}
    while time.monotonic() < started + timeout:
        deployed_clusters = NodeCluster.objects.filter(
            owner_id__in=fleet.owner_ids, state=NodeClusterState.DEPLOYED
        ).count()
        counts = Node.objects.filter(owner_id__in=fleet.owner_ids).aggregate(
            live=Count("pk", filter=Q(state__in=live_states)), deployed=Count("pk", filter=Q(state=NodeState.DEPLOYED))
        )
        now = time.monotonic() - started
        milestones["clusters"], milestones["deployed"] = deployed_clusters, counts["deployed"]
        if counts["live"] >= total:
            milestones.setdefault("rows", now)
        if counts["deployed"] >= total:
            milestones.setdefault("nodes", now)
        if deployed_clusters == len(fleet.clusters) and counts["deployed"] == total and counts["live"] == total:
            milestones["converged"] = now
            break
        time.sleep(0.1)
    return milestones


def _retire(fleet: Fleet) -> None:
    """Take a measured fleet's instances out of the simulated cloud, so the next layout's listings do not carry them."""
    from django.utils import timezone

    from providers.models import SimulatedInstance

    SimulatedInstance.objects.filter(
        cluster_uuid__in=[uuid for _, uuid in fleet.clusters], terminated_at__isnull=True
    ).update(terminated_at=timezone.now())


def _postgres_processes() -> list[psutil.Process]:
    """The local PostgreSQL server's processes (its backends among them), when this user may read them."""
    return [process for process in psutil.process_iter(["name"]) if process.info["name"] == "postgres"]


def _latency_cells(latencies: list[float]) -> list[float]:
    return [
        len(latencies),
        support.percentile(latencies, 0.5) * 1000,
        support.percentile(latencies, 0.99) * 1000,
        max(latencies, default=float("nan")) * 1000,
    ]


def fleet_run(env: dict[str, str], *, run: str, layout: tuple[int, int], args) -> dict:
    """One layout: seed a fresh fleet, measure the idle list page, deploy every cluster at once, time convergence
    while probing the list page, then measure the idle page again."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from bench.api import Gunicorn
    from providers.models import SimulatedInstance

    processes, threads = layout
    fleet = seed_fleet(run=run, users=args.fleet_users, clusters_per_user=args.fleet_clusters, nodes=args.fleet_nodes)
    result = {"layout": f"{processes} x {threads}"}
    with (
        Workers(env=env, count=processes, concurrency=threads, nice=args.worker_nice, as_make_run=True) as pool,
        Beat(env=env, run=run, enabled=args.fleet_beat),
        Gunicorn(env=env, workers=args.fleet_web[0], threads=args.fleet_web[1]) as web,
        ListProbe(url=web.url, users=fleet.users, rate=args.probe_rate) as probe,
    ):
        pids = [process.pid for process in pool.processes]
        time.sleep(1.0)  # the probe's first requests warm every gunicorn thread's connection
        idle_before = (time.monotonic(), time.monotonic() + args.idle_seconds)
        time.sleep(args.idle_seconds)
        calls_before, reconciles_before = provider_calls(), reconcile_stats()
        workers_before = support.cpu_seconds(support.family(pids))
        web_before = support.cpu_seconds(web.processes())
        db_before, bench_before = support.cpu_seconds(_postgres_processes()), support.cpu_seconds([psutil.Process()])
        activity = ActivitySampler()
        with activity:
            started_at = timezone.now()
            started = time.monotonic()
            answers = _deploy_all(web.url, fleet)
            result["answered"] = time.monotonic() - started
            milestones = _wait_fleet(fleet, nodes=args.fleet_nodes, started=started, timeout=args.fleet_timeout)
        burst = (started, started + result["answered"])
        converging = (burst[1], time.monotonic())
        result.update(milestones)
        result["answers"] = answers
        result["worker_cpu"] = support.cpu_delta(workers_before, support.cpu_seconds(support.family(pids)))
        result["web_cpu"] = support.cpu_delta(web_before, support.cpu_seconds(web.processes()))
        result["db_cpu"] = support.cpu_delta(db_before, support.cpu_seconds(_postgres_processes()))
        result["bench_cpu"] = support.cpu_delta(bench_before, support.cpu_seconds([psutil.Process()]))
        result["activity"] = activity
        calls = provider_calls() - calls_before
        result["calls"] = calls
        count, total = (after - before for after, before in zip(reconcile_stats(), reconciles_before, strict=True))
        result["reconciles"], result["reconcile_ms"] = count, (total * 1000 / count if count else 0.0)
        idle_after = (time.monotonic(), time.monotonic() + args.idle_seconds)
        time.sleep(args.idle_seconds)
    creates = SimulatedInstance.objects.filter(
        cluster_uuid__in=[uuid for _, uuid in fleet.clusters], created_at__gte=started_at
    ).aggregate(first=Min("created_at"), last=Max("created_at"))
    if creates["last"] is not None:
        result["creates"] = tuple((creates[end] - started_at).total_seconds() for end in ("first", "last"))
    result["creates_by_second"] = Counter(
        int((created - started_at).total_seconds())
        for created in SimulatedInstance.objects.filter(
            cluster_uuid__in=[uuid for _, uuid in fleet.clusters], created_at__gte=started_at
        ).values_list("created_at", flat=True)
    )
    windows = {"idle_before": idle_before, "burst": burst, "converging": converging, "idle_after": idle_after}
    for name, (start, end) in windows.items():
        result[name], result[f"{name}_errors"] = probe.window(start, end)
    result["timeline"] = {}
    for asked, seconds, _ in probe.samples:
        if burst[0] <= asked < converging[1]:
            result["timeline"].setdefault(int(asked - burst[0]), []).append(seconds)
    _retire(fleet)
    return result


def part_fleet(env: dict[str, str], args) -> bool:
    import redis

    layouts = [tuple(int(part) for part in value.split("x")) for value in args.fleet_layouts.split(",")]
    total = args.fleet_users * args.fleet_clusters * args.fleet_nodes
    boot = args.fleet_boot_seconds
    places = ", ".join(f"{provider}/{region}" for provider, region, _ in FLEET_PLACES)
    beat = f"beat (sweep every {env['ENGINE_SWEEP_INTERVAL']} s)" if args.fleet_beat else "no beat"
    print(
        f"\nfleet: {args.fleet_users} users x {args.fleet_clusters} clusters x {args.fleet_nodes} nodes = {total} "
        f"nodes deployed at once over HTTP (one POST .../deploy/ per cluster, all concurrent), users round-robin over "
        f"{places}; simulated cloud booting in {boot:g} s, ENGINE_POLL_INTERVAL {env['ENGINE_POLL_INTERVAL']} s, "
        f"broker {BROKER_URL}, {beat}; "
        f"gunicorn {args.fleet_web[0]} workers x {args.fleet_web[1]} threads"
        f"{' (as `make run`)' if tuple(args.fleet_web) == DEFAULT_WEB else ''}"
    )
    print(
        f"  list page: GET {FLEET_LIST_PATH} as each fleet user in turn, {args.probe_rate:g} requests/s open loop, "
        f"idle for {args.idle_seconds:g} s before the burst, during convergence, idle for {args.idle_seconds:g} s after"
    )
    results = []
    for number, layout in enumerate(layouts):
        redis.Redis.from_url(BROKER_URL).flushdb()
        results.append(fleet_run(env, run=f"{number}", layout=layout, args=args))
    rows, probe_rows = [], []
    on_target = True
    for result in results:
        seconds = result.get("converged")
        ratio = seconds / boot if seconds is not None else float("nan")
        idle = support.percentile(result["idle_before"] + result["idle_after"], 0.99)
        p99_ratio = support.percentile(result["converging"], 0.99) / idle
        result["p99_ratio"], result["ratio"] = p99_ratio, ratio
        result["burst_ratio"] = support.percentile(result["burst"], 0.99) / idle
        on_target &= seconds is not None and ratio <= 3 and p99_ratio <= 4
        calls = result["calls"]
        activity = result["activity"]
        rows.append(
            [
                result["layout"],
                f"{seconds:.2f}"
                if seconds is not None
                else (f"TIMEOUT ({result.get('clusters', 0)} clusters, {result.get('deployed', 0)} nodes)"),
                ratio,
                result["answered"],
                "{:.2f}-{:.2f}".format(*result["creates"]) if "creates" in result else "-",
                result.get("nodes", float("nan")),
                int(result["reconciles"]),
                result["reconcile_ms"],
                int(calls["list_nodes"]),
                int(calls["get_node"]),
                int(calls["create_node"]),
                activity.cpu_busy * 100,
                result["worker_cpu"],
                result["web_cpu"],
                result["db_cpu"],
                result["bench_cpu"],
                activity.cpu_seconds,
                activity.mean_active,
                activity.mean_lock_waits,
            ]
        )
        labels = {
            "idle_before": "idle before",
            "burst": "the burst of deploys",
            "converging": "converging after it",
            "idle_after": "idle after",
        }
        for name, label in labels.items():
            errors = result[f"{name}_errors"]
            probe_rows.append(
                [f"{result['layout']}: {label}", *_latency_cells(result[name]), sum(errors.values()) or 0]
            )
        unexpected = {status: count for status, count in result["answers"].items() if status != 202}
        if unexpected:
            print(f"  {result['layout']}: unexpected answers to the deploy requests: {unexpected}")
    headers = ["workers (processes x threads)", "converged s", "/ boot", "deploys answered s", "creates at s"]
    headers += ["nodes done at s", "reconciles", "ms/reconcile", "listings", "get_node", "create_node"]
    headers += ["CPU busy %", "worker CPU s", "web CPU s", "db CPU s", "bench CPU s", "all CPU s"]
    headers += ["active db", "lock-waiting db"]
    print(support.table(headers, rows))
    print("  listings / get_node / create_node: driver calls by the workers during the convergence (Prometheus files);")
    print("  CPU busy %: the whole machine over the convergence (2 cores = 100 %); web CPU s: gunicorn (probe and")
    print("  deploy requests); db CPU s: the local PostgreSQL server; bench CPU s: this process (the deploy and probe")
    print("  clients, the samplers), which shares the machine too; active / lock-waiting db: mean PostgreSQL")
    print("  backends busy / waiting on a lock.")
    print(support.table(["list page", "requests", "p50 ms", "p99 ms", "max ms", "errors"], probe_rows))
    for result in results:
        print(
            f"  {result['layout']}: converged in {result['ratio']:.2f} boot times (target <= 3); list page p99 "
            f"converging (once the deploys are answered) / idle (before and after together) = "
            f"{result['p99_ratio']:.2f} (target <= 4); during the burst of deploy requests: {result['burst_ratio']:.2f}"
        )
    for result in results:
        activity = result["activity"]
        waits = ", ".join(f"{name} {count / activity.samples:.2f}" for name, count in activity.waits.most_common(6))
        print(f"  {result['layout']}, active backends by wait event (mean): {waits}")
        for what, counter in (("waiting on a lock", activity.lock_waits), ("running on CPU", activity.running)):
            top = counter.most_common(3)
            if top:
                print(f"  {result['layout']}, statements {what} (mean backends):")
                for sql, count in top:
                    print(f"    {count / activity.samples:5.2f}  {sql}")
    if args.timeline:
        for result in results:
            print(f"  {result['layout']}: list page latency by second of the convergence (p50 / max ms, requests):")
            cells = []
            for second, latencies in sorted(result["timeline"].items()):
                cells.append(
                    f"{second:>3}s {support.percentile(latencies, 0.5) * 1000:5.0f}/{max(latencies) * 1000:5.0f} "
                    f"({len(latencies)})"
                )
            for start in range(0, len(cells), 6):
                print("    " + "   ".join(cells[start : start + 6]))
            by_second = result["creates_by_second"]
            print(f"  {result['layout']}: instances created by second of the convergence:")
            seconds = range(max(by_second, default=-1) + 1)
            print("    " + " ".join(f"{second}s:{by_second[second]}" for second in seconds))
    print(f"  fleet target: {'on target' if on_target else 'OFF target'}")
    return on_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,200", help="cluster sizes to converge, comma-separated")
    parser.add_argument("--reconcile-sizes", default="100,1000", help="node counts for the one-reconcile cost")
    parser.add_argument("--runs", type=int, default=20, help="reconciles timed per size")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--boot-seconds", type=float, default=2.0, help="SIMULATED_BOOT_SECONDS")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="ENGINE_POLL_INTERVAL")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE of the workers")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the largest reconcile")
    fleet = parser.add_argument_group("the fleet (--fleet runs it instead of the parts above)")
    fleet.add_argument("--fleet", action="store_true", help="converge a fleet of clusters while probing the list page")
    fleet.add_argument("--fleet-users", type=int, default=20)
    fleet.add_argument("--fleet-clusters", type=int, default=5, help="clusters per user")
    fleet.add_argument("--fleet-nodes", type=int, default=10, help="nodes per cluster")
    fleet.add_argument("--fleet-boot-seconds", type=float, default=5.0, help="SIMULATED_BOOT_SECONDS of the fleet")
    fleet.add_argument(
        "--fleet-poll-interval", type=float, default=None, help="ENGINE_POLL_INTERVAL (default: the project's)"
    )
    fleet.add_argument(
        "--fleet-layouts",
        default=f"{DEFAULT_LAYOUT[0]}x{DEFAULT_LAYOUT[1]}",
        help="worker layouts to compare, PROCESSESxTHREADS comma-separated (default: what `make run` starts)",
    )
    fleet.add_argument(
        "--fleet-web",
        type=lambda value: tuple(int(part) for part in value.split("x")),
        default=DEFAULT_WEB,
        help="gunicorn WORKERSxTHREADS serving the deploys and the list page (default: what `make run` starts)",
    )
    fleet.add_argument(
        "--fleet-beat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run Celery beat beside the workers, as `make run` does (its sweep every ENGINE_SWEEP_INTERVAL)",
    )
    fleet.add_argument("--worker-nice", type=int, default=DEFAULT_WORKER_NICE, help="nice of the worker processes")
    fleet.add_argument("--probe-rate", type=float, default=20.0, help="list page requests per second")
    fleet.add_argument("--idle-seconds", type=float, default=8.0, help="idle list page probing before and after")
    fleet.add_argument("--fleet-timeout", type=float, default=180.0, help="seconds to wait for convergence")
    fleet.add_argument("--timeline", action="store_true", help="print the list page's latency second by second")
    args = parser.parse_args(argv)
    started = time.monotonic()
    engine_env = {
        "CELERY_BROKER_URL": BROKER_URL,
        "SIMULATE_PROVIDERS": "1",
        "SIMULATED_BOOT_SECONDS": str(args.fleet_boot_seconds if args.fleet else args.boot_seconds),
        "SIMULATED_FAILURE_RATE": "0",
        "LOG_LEVEL": "INFO",
    }
    poll_interval = args.fleet_poll_interval if args.fleet else args.poll_interval
    if poll_interval is not None:
        engine_env["ENGINE_POLL_INTERVAL"] = str(poll_interval)
    with support.bench_environment(env=engine_env) as env:
        # The workers' logs go to files; this process only prints the figures.
        import logging

        from django.conf import settings

        logging.getLogger().setLevel(logging.WARNING)
        env["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
        env.setdefault("ENGINE_POLL_INTERVAL", f"{settings.ENGINE_POLL_INTERVAL:g}")
        env.setdefault("ENGINE_SWEEP_INTERVAL", f"{settings.ENGINE_SWEEP_INTERVAL:g}")
        print(support.machine_summary())
        try:
            if args.fleet:
                fleet_ok = part_fleet(env, args)
                summary = f"fleet {'on' if fleet_ok else 'OFF'} target"
            else:
                reconcile_ok = part_reconcile(
                    sizes=[int(value) for value in args.reconcile_sizes.split(",")],
                    runs=args.runs,
                    profile=args.profile,
                )
                converge_ok = part_convergence(
                    env,
                    sizes=[int(value) for value in args.sizes.split(",")],
                    workers=args.workers,
                    concurrency=args.concurrency,
                    boot=args.boot_seconds,
                )
                summary = (
                    f"reconcile {'on' if reconcile_ok else 'OFF'} target, "
                    f"convergence {'on' if converge_ok else 'OFF'} target"
                )
        finally:
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(BROKER_URL).flushdb()
    print(f"bench.engine finished in {time.monotonic() - started:.0f} s; {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
