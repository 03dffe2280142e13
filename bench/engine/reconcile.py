"""Part 1: the SQL queries, CPU and wall time of one reconcile of an already converged cluster."""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time

import psutil

from bench import support

from .workers import shorten


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
        print(f"    {shorten(sql)}")
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
