"""Engine speed: how fast real Celery workers converge a cluster, and what one reconcile of a big cluster costs.

    python -m bench.engine [--sizes 10,50,200] [--workers 2 --concurrency 32] [--boot-seconds 2] [--profile]

Part 1, in this process: SQL queries, CPU and wall time of ONE `reconcile_node_cluster` of an already converged
cluster of 100 and of 1,000 Deployed nodes (rows written in bulk). Part 2: two Celery workers (threads pool) on
PostgreSQL and a Redis broker (db 14, flushed first), no beat, the simulated cloud booting in 2 s: a cluster in
`Empty cluster` is scaled 0 -> N and back to 0 through `node_cluster_update`, and each convergence is timed
against one boot time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import re
import statistics
import sys
import time
import uuid as uuid_module
from collections import Counter
from pathlib import Path

import psutil

from bench import support

BROKER_URL = "redis://127.0.0.1:6379/14"
CONTEXT_PATH = "/bench/engine/"


# --- part 1: one reconcile -------------------------------------------------------------------------------------


def converged_cluster(*, nodes: int):
    """A Deployed cluster of `nodes` Deployed nodes whose last action has ended, as the engine leaves it."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from nodeclusters.api import uris
    from nodeclusters.choices import ActionState, NodeClusterState
    from nodeclusters.models import Action, Node, NodeCluster, NodeType, Region

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
    """Celery workers as tests/support/engine.py starts them: threads pool, no gossip, no mingle; no beat."""

    def __init__(self, *, env: dict[str, str], count: int, concurrency: int) -> None:
        self.env, self.count, self.concurrency = env, count, concurrency
        self.processes = []
        self.var_dir = Path(env["TUTUM_VAR_DIR"])

    def __enter__(self) -> Workers:
        from tutum_api.celery import app

        for index in range(self.count):
            args = ["celery", "-A", "tutum_api", "worker", "--pool", "threads", "--concurrency", str(self.concurrency)]
            args += ["--loglevel", "INFO", "--hostname", f"bench{index}-{uuid_module.uuid4().hex[:6]}@%h"]
            args += ["--without-gossip", "--without-mingle"]
            self.processes.append(support.spawn(args, env=self.env, log_path=self.log_path(index)))

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
                        "SELECT wait_event_type, query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'active' AND pid <> pg_backend_pid()"
                    )
                    rows = cursor.fetchall()
                self.samples += 1
                self.active += len(rows)
                for wait_event_type, query in rows:
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
        f"booting in {boot:g} s, ENGINE_POLL_INTERVAL {env['ENGINE_POLL_INTERVAL']} s, Redis db 14"
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
    args = parser.parse_args(argv)
    started = time.monotonic()
    engine_env = {
        "CELERY_BROKER_URL": BROKER_URL,
        "SIMULATE_PROVIDERS": "1",
        "SIMULATED_BOOT_SECONDS": str(args.boot_seconds),
        "SIMULATED_FAILURE_RATE": "0",
        "ENGINE_POLL_INTERVAL": str(args.poll_interval),
        "LOG_LEVEL": "INFO",
    }
    with support.bench_environment(env=engine_env) as env:
        # The workers' logs go to files; this process only prints the figures.
        import logging

        logging.getLogger().setLevel(logging.WARNING)
        env["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
        print(support.machine_summary())
        reconcile_ok = part_reconcile(
            sizes=[int(value) for value in args.reconcile_sizes.split(",")], runs=args.runs, profile=args.profile
        )
        try:
            converge_ok = part_convergence(
                env,
                sizes=[int(value) for value in args.sizes.split(",")],
                workers=args.workers,
                concurrency=args.concurrency,
                boot=args.boot_seconds,
            )
        finally:
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(BROKER_URL).flushdb()
    print(
        f"bench.engine finished in {time.monotonic() - started:.0f} s; reconcile {'on' if reconcile_ok else 'OFF'} "
        f"target, convergence {'on' if converge_ok else 'OFF'} target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
