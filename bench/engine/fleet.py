"""`--fleet`: a fleet of users' clusters deployed at once over HTTP, converged while the list page is probed."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import psutil

from bench import support

from .probes import FLEET_LIST_PATH, Beat, ListProbe, latency_cells, postgres_processes
from .workers import BROKER_URL, CONTEXT_PATH, DEFAULT_WEB, ActivitySampler, Workers, provider_calls, reconcile_stats

#: Where the fleet's users deploy (provider, region, node type), round-robin by user: four provider/region pairs,
#: so the batched poll makes four listings per interval where per-cluster polls made one per cluster.
FLEET_PLACES = (
    ("digitalocean", "lon1", "1gb"),
    ("digitalocean", "nyc3", "1gb"),
    ("aws", "us-east-1", "t2.micro"),
    ("aws", "eu-west-1", "t2.micro"),
)


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
        db_before, bench_before = support.cpu_seconds(postgres_processes()), support.cpu_seconds([psutil.Process()])
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
        result["db_cpu"] = support.cpu_delta(db_before, support.cpu_seconds(postgres_processes()))
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
            probe_rows.append([f"{result['layout']}: {label}", *latency_cells(result[name]), sum(errors.values()) or 0])
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
