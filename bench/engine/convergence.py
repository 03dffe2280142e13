"""Part 2: how fast two Celery workers converge one cluster scaled up and back down, in boot times."""

from __future__ import annotations

import time

import psutil

from bench import support

from .workers import BROKER_URL, CONTEXT_PATH, ActivitySampler, Workers, reconcile_stats


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
