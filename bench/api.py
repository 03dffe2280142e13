"""API throughput and latency: gunicorn on PostgreSQL under an asyncio + httpx load, beside a one-query baseline.

    python -m bench.api [--concurrency 1,8,32] [--seconds 4] [--workers 2 --threads 4] [--no-sweep]

Seeds one user with 100 clusters of 6 nodes and 5 actions each (rows in bulk, catalog from the migrations), counts
the SQL queries of a list page in-process, then serves the project with gunicorn on 127.0.0.1 and measures list,
detail, create, scale and the baseline list and detail (`bench.baseline`) at each concurrency. Writes go to a
second user so the pages being compared stay the same throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench import support

READ_USER, WRITE_USER, EMPTY_USER = "bench-reader", "bench-writer", "bench-empty"
REGION_URI, NODE_TYPE_URI = "/api/v1/region/digitalocean/lon1/", "/api/v1/nodetype/digitalocean/1gb/"
LIST_PATH, BASELINE_PATH = "/api/v1/nodecluster/?limit=25", "/bench/baseline/nodecluster/?limit=25"
SCENARIOS = ("list", "baseline", "detail", "detail-baseline", "create", "scale")
# (ours, its baseline, target ratio): the list target is the issue's; DRF's published detail figure is about 0.6.
RATIOS = (("list", "baseline", 0.7), ("detail", "detail-baseline", 0.6))
# Each scenario's request, described for the output.
SCENARIO_TEXT = {
    "list": f"GET {LIST_PATH} (25 clusters, 6 nodes + 5 actions each)",
    "baseline": f"GET {BASELINE_PATH} (same body, one hand-written query)",
    "detail": "GET /api/v1/nodecluster/<uuid>/ (6 nodes + 5 actions)",
    "detail-baseline": "GET /bench/baseline/nodecluster/<uuid>/ (same body, the baseline's query cut to one row)",
    "create": "POST /api/v1/nodecluster/ (201, state Init)",
    "scale": "PATCH /api/v1/nodecluster/<uuid>/ target_num_nodes on an Init cluster (200, synchronous)",
}
# (workers, threads) tried by the sweep; threads > 1 means gunicorn's gthread worker, 1 its sync worker.
SWEEP_CONFIGS = ((2, 1), (2, 4), (2, 8), (4, 1), (4, 4), (3, 8))
#: What `make run` serves the API with (runstack's gunicorn): the sweep's reference and the load's default.
MAKE_RUN_WEB = (2, 8)


@dataclass
class Seed:
    """Who the load runs as and which clusters it reads and writes."""

    credentials: dict[str, str]  # username -> raw API key
    read_clusters: list[str]
    write_clusters: list[str]


def seed_data(*, clusters: int, nodes: int, actions: int) -> Seed:
    """Users, keys and clusters written in bulk: the reader's clusters Deployed with nodes and actions, the writer's
    in Init (what the scale scenario patches), and the empty user's 25 clusters with neither nodes nor actions."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from nodeclusters import services
    from nodeclusters.choices import ActionState, NodeClusterState
    from nodeclusters.models import Action, ActionLogLine, Node, NodeCluster, NodeType, Region
    from nodeclusters.wire import uris

    user_model = get_user_model()
    region = Region.objects.select_related("provider").get(provider__name="digitalocean", name="lon1")
    node_type = NodeType.objects.get(provider__name="digitalocean", name="1gb")
    now = timezone.now()
    credentials = {}
    owners = {}
    for username in (READ_USER, WRITE_USER, EMPTY_USER):
        owners[username] = user_model.objects.create_user(username=username)
        credentials[username] = services.api_key_create(user=owners[username], label="bench")[1]

    def cluster_rows(owner, count: int, state: str, per_cluster_nodes: int) -> list:
        return [
            NodeCluster(
                owner=owner,
                name=f"{owner.username}-{index}",
                nickname=f"{owner.username}-{index}",
                state=state,
                node_type=node_type,
                region=region,
                target_num_nodes=per_cluster_nodes,
                tags=["bench", f"group-{index % 4}"],
                deployed_datetime=now if state == NodeClusterState.DEPLOYED else None,
            )
            for index in range(count)
        ]

    read = NodeCluster.objects.bulk_create(cluster_rows(owners[READ_USER], clusters, NodeClusterState.DEPLOYED, nodes))
    write = NodeCluster.objects.bulk_create(cluster_rows(owners[WRITE_USER], clusters, NodeClusterState.INIT, 1))
    NodeCluster.objects.bulk_create(cluster_rows(owners[EMPTY_USER], 25, NodeClusterState.INIT, 0))
    node_rows, action_rows = [], []
    for cluster in read:
        node_rows += [support.deployed_node(cluster, len(node_rows) + index, now=now) for index in range(nodes)]
        for index in range(actions):
            action_rows.append(
                Action(
                    owner=cluster.owner,
                    action="Node Cluster Scale",
                    method="PATCH",
                    path=uris.nodecluster_uri(cluster.uuid),
                    body='{"target_num_nodes": 6}',
                    object_uri=uris.nodecluster_uri(cluster.uuid),
                    node_cluster=cluster,
                    state=ActionState.SUCCESS,
                    start_date=now - datetime.timedelta(minutes=index),
                    end_date=now - datetime.timedelta(minutes=index) + datetime.timedelta(seconds=30),
                )
            )
    Node.objects.bulk_create(node_rows, batch_size=2000)
    Action.objects.bulk_create(action_rows, batch_size=2000)
    ActionLogLine.objects.bulk_create(
        [ActionLogLine(action=action, message="Deployed: 6 node(s) up") for action in action_rows], batch_size=2000
    )
    return Seed(
        credentials=credentials,
        read_clusters=[str(cluster.uuid) for cluster in read],
        write_clusters=[str(cluster.uuid) for cluster in write],
    )


def auth_header(seed: Seed, username: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {username}:{seed.credentials[username]}"}


# --- queries per page, in-process ------------------------------------------------------------------------------


def query_counts(seed: Seed) -> bool:
    """Print the SQL queries of list pages (and the baseline) through Django's test client; True if on target."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    pages = [
        ("list, 25 clusters with 0 nodes / 0 actions", LIST_PATH, EMPTY_USER),
        ("list, 25 clusters with 6 nodes / 5 actions", LIST_PATH, READ_USER),
        ("list, 100 clusters with 6 nodes / 5 actions", "/api/v1/nodecluster/?limit=100", READ_USER),
        ("detail, 1 cluster with 6 nodes / 5 actions", f"/api/v1/nodecluster/{seed.read_clusters[0]}/", READ_USER),
        ("baseline list, 25 clusters", BASELINE_PATH, READ_USER),
        ("baseline detail", f"/bench/baseline/nodecluster/{seed.read_clusters[0]}/", READ_USER),
    ]
    rows = []
    list_page_queries = set()
    for label, path, username in pages:
        headers = {"HTTP_AUTHORIZATION": auth_header(seed, username)["Authorization"]}
        client.get(path, **headers)  # the first request of a key also records when it was last used
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **headers)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        auth = sum(1 for query in captured.captured_queries if '"nodeclusters_apikey"' in query["sql"])
        page = len(captured) - auth
        if label.startswith("list"):
            list_page_queries.add(page)
        rows.append([label, len(captured), auth, page])
    print("SQL queries per request (in-process, django.test.Client + CaptureQueriesContext):")
    print(support.table(["page", "queries", "auth", "page queries"], rows))
    on_target = len(list_page_queries) == 1 and max(list_page_queries) <= 4
    print(
        f"list page queries besides auth: {sorted(list_page_queries)} -> "
        f"{'constant and <= 4: on target' if on_target else 'NOT constant or > 4: off target'}"
    )
    for username in (READ_USER, EMPTY_USER):
        headers = {"HTTP_AUTHORIZATION": auth_header(seed, username)["Authorization"]}
        real = client.get(LIST_PATH, **headers).json()
        baseline = client.get(BASELINE_PATH, **headers).json()
        same = real == baseline
        print(f"baseline body == list body for {username}: {'yes' if same else 'NO'}")
        if not same:
            print(
                json.dumps(real["objects"][:1], indent=1)[:1500], json.dumps(baseline["objects"][:1], indent=1)[:1500]
            )
            on_target = False
    headers = {"HTTP_AUTHORIZATION": auth_header(seed, READ_USER)["Authorization"]}
    real, baseline = (
        client.get(f"{prefix}/nodecluster/{seed.read_clusters[0]}/", **headers).json()
        for prefix in ("/api/v1", "/bench/baseline")
    )
    print(f"baseline detail body == detail body: {'yes' if real == baseline else 'NO'}")
    return on_target and real == baseline


# --- the server ------------------------------------------------------------------------------------------------


class Gunicorn:
    """The project under gunicorn on 127.0.0.1, started as a subprocess with the benchmark's settings."""

    def __init__(self, *, env: dict[str, str], workers: int, threads: int) -> None:
        self.env, self.workers, self.threads = env, workers, threads
        self.port = support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(env["TUTUM_VAR_DIR"]) / f"gunicorn-{workers}x{threads}.log"
        self.process = None

    @property
    def label(self) -> str:
        kind = "gthread" if self.threads > 1 else "sync"
        return f"{self.workers} workers x {self.threads} threads ({kind})"

    def __enter__(self) -> Gunicorn:
        args = [
            "gunicorn",
            "tutum_api.wsgi:application",
            "--config",
            "python:tutum_api.gunicorn_conf",  # the settings `make run` and compose serve with
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread" if self.threads > 1 else "sync",
            "--threads",
            str(self.threads),
            "--log-level",
            "warning",
            # The default control socket is one path per user; a second gunicorn (make run) must not collide.
            "--no-control-socket",
        ]
        self.process = support.spawn(args, env=self.env, log_path=self.log_path)
        ready = support.wait_for(self._ready, timeout=30, interval=0.1)
        if not ready:
            support.stop(self.process)
            raise RuntimeError(f"gunicorn did not answer in 30 s:\n{support.tail(self.log_path)}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{support.tail(self.log_path)}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc_info) -> None:
        support.stop(self.process)

    def processes(self) -> list[psutil.Process]:
        return support.family([self.process.pid])


# --- load ------------------------------------------------------------------------------------------------------


@dataclass
class CellResult:
    """One scenario at one concurrency: latencies of the requests that completed and what went wrong."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    database_cpu: float = 0.0

    def merge(self, other: CellResult) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.elapsed += other.elapsed
        self.client_cpu += other.client_cpu
        self.server_cpu += other.server_cpu
        self.database_cpu += other.database_cpu

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.requests if self.requests else float("nan")


class Scenarios:
    """Builds the n-th request of each scenario. Counters are shared across cells, so every PATCH changes a target."""

    def __init__(self, seed: Seed) -> None:
        self.seed = seed
        self.counters = {name: itertools.count() for name in SCENARIOS}
        self.reader = auth_header(seed, READ_USER)
        self.writer = auth_header(seed, WRITE_USER)

    def next_request(self, scenario: str) -> tuple[str, str, dict | None, dict[str, str], int]:
        """(method, path, JSON body, headers, expected status)."""
        n = next(self.counters[scenario])
        if scenario == "list":
            return "GET", LIST_PATH, None, self.reader, 200
        if scenario == "baseline":
            return "GET", BASELINE_PATH, None, self.reader, 200
        if scenario in ("detail", "detail-baseline"):
            uuid = self.seed.read_clusters[n % len(self.seed.read_clusters)]
            prefix = "/api/v1" if scenario == "detail" else "/bench/baseline"
            return "GET", f"{prefix}/nodecluster/{uuid}/", None, self.reader, 200
        if scenario == "create":
            body = {"name": f"bench-{n}", "region": REGION_URI, "node_type": NODE_TYPE_URI, "target_num_nodes": 1}
            return "POST", "/api/v1/nodecluster/", body, self.writer, 201
        clusters = self.seed.write_clusters
        # Each visit to a cluster moves its target one step, so every request is a real change of size.
        target = (n // len(clusters)) % 50 + 2
        return (
            "PATCH",
            f"/api/v1/nodecluster/{clusters[n % len(clusters)]}/",
            {"target_num_nodes": target},
            self.writer,
            200,
        )


async def _load(
    base_url: str, scenarios: Scenarios, scenario: str, *, concurrency: int, seconds: float, max_requests: int
) -> CellResult:
    result = CellResult()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60, trust_env=False) as client:
        budget = itertools.count()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds

        async def one_client() -> None:
            while next(budget) < max_requests and loop.time() < deadline:
                method, path, body, headers, expected = scenarios.next_request(scenario)
                started = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                result.latencies.append(time.perf_counter() - started)
                if status != expected:
                    result.errors[status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - started
    return result


def database_backends() -> list[psutil.Process]:
    """The PostgreSQL backends serving this benchmark's database, except this process's own connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    return support.family(pids)


def measure(
    server: Gunicorn, scenarios: Scenarios, scenario: str, *, concurrency: int, seconds: float, max_requests: int
) -> CellResult:
    """One cell, with the CPU the client, the gunicorn processes and the database backends spent on it."""
    server_before = support.cpu_seconds(server.processes())
    database_before = support.cpu_seconds(database_backends())
    client_before = time.process_time()
    result = asyncio.run(
        _load(server.url, scenarios, scenario, concurrency=concurrency, seconds=seconds, max_requests=max_requests)
    )
    result.client_cpu = time.process_time() - client_before
    result.server_cpu = support.cpu_delta(server_before, support.cpu_seconds(server.processes()))
    result.database_cpu = support.cpu_delta(database_before, support.cpu_seconds(database_backends()))
    return result


def warm_up(server: Gunicorn, scenarios: Scenarios, names=SCENARIOS) -> None:
    """Every thread of every worker gets its database connection and has run each code path once."""
    for scenario in names:
        result = measure(server, scenarios, scenario, concurrency=8, seconds=1.0, max_requests=100)
        if result.errors:
            raise RuntimeError(f"warm-up of {scenario} failed: {dict(result.errors)}\n{support.tail(server.log_path)}")


def run_matrix(
    server: Gunicorn, scenarios: Scenarios, *, concurrencies: list[int], seconds: float, max_requests: int
) -> dict[tuple[str, int], CellResult]:
    """Every scenario at every concurrency. Each view and its baseline alternate in two halves so drift hits both
    alike."""
    results = {}
    for concurrency in concurrencies:
        for ours, baseline, _ in RATIOS:
            for scenario in (ours, baseline, ours, baseline):
                part = measure(
                    server,
                    scenarios,
                    scenario,
                    concurrency=concurrency,
                    seconds=seconds / 2,
                    max_requests=max_requests // 2,
                )
                results.setdefault((scenario, concurrency), CellResult()).merge(part)
        for scenario in ("create", "scale"):
            results[(scenario, concurrency)] = measure(
                server, scenarios, scenario, concurrency=concurrency, seconds=seconds, max_requests=max_requests
            )
    return results


def print_matrix(results: dict[tuple[str, int], CellResult], concurrencies: list[int]) -> bool:
    rows = []
    for scenario in SCENARIOS:
        for concurrency in concurrencies:
            cell = results[(scenario, concurrency)]
            rows.append(
                [
                    scenario,
                    concurrency,
                    cell.requests,
                    cell.rate,
                    support.percentile(cell.latencies, 0.50) * 1000,
                    support.percentile(cell.latencies, 0.99) * 1000,
                    sum(cell.errors.values()),
                    cell.per_request_ms(cell.server_cpu),
                    cell.per_request_ms(cell.database_cpu),
                    cell.per_request_ms(cell.client_cpu),
                ]
            )
    headers = ["scenario", "clients", "requests", "req/s", "p50 ms", "p99 ms", "errors"]
    headers += ["web CPU ms/req", "db CPU ms/req", "load CPU ms/req"]
    print(support.table(headers, rows))
    for scenario in SCENARIOS:
        errors = Counter()
        for concurrency in concurrencies:
            errors.update(results[(scenario, concurrency)].errors)
        if errors:
            print(f"  {scenario}: unexpected answers {dict(errors)}")
    on_target = True
    for ours, baseline_name, target in RATIOS:
        print(f"{ours} / {baseline_name}, measured side by side (target >= {target:.2f}):")
        for concurrency in concurrencies:
            real, baseline = results[(ours, concurrency)], results[(baseline_name, concurrency)]
            ratio = real.rate / baseline.rate if baseline.rate else float("nan")
            cpu_ratio = (
                baseline.per_request_ms(baseline.server_cpu) / real.per_request_ms(real.server_cpu)
                if real.server_cpu
                else float("nan")
            )
            on_target &= ratio >= target
            print(
                f"  {concurrency:>3} clients: req/s {real.rate:7.1f} / {baseline.rate:7.1f} = {ratio:.2f}"
                f"   (web CPU per request, baseline / ours: {cpu_ratio:.2f})"
                f"   {'on target' if ratio >= target else 'below target'}"
            )
    return on_target


def sweep(env: dict[str, str], seed: Seed, *, seconds: float, concurrencies: list[int]) -> None:
    """List-page req/s for several gunicorn shapes, each relative to the shape `make run` uses (`MAKE_RUN_WEB`)."""
    print(f"\ngunicorn shapes, list page only, 2 rounds (the second in reverse order) of {seconds:.1f} s per cell:")
    rates = {}
    # Shapes run one after the other, so a second round in reverse order evens out drift on a shared machine.
    for configs in (SWEEP_CONFIGS, SWEEP_CONFIGS[::-1]):
        for workers, threads in configs:
            with Gunicorn(env=env, workers=workers, threads=threads) as server:
                scenarios = Scenarios(seed)
                warm_up(server, scenarios, names=("list",))
                for concurrency in concurrencies:
                    cell = measure(
                        server, scenarios, "list", concurrency=concurrency, seconds=seconds, max_requests=100_000
                    )
                    rates.setdefault((server.label, concurrency), CellResult()).merge(cell)
    reference = Gunicorn(env=env, workers=MAKE_RUN_WEB[0], threads=MAKE_RUN_WEB[1]).label
    rows = []
    for label in dict.fromkeys(label for label, _ in rates):
        row = [label]
        for concurrency in concurrencies:
            cell = rates[(label, concurrency)]
            row += [
                cell.rate,
                support.percentile(cell.latencies, 0.99) * 1000,
                cell.rate / rates[(reference, concurrency)].rate,
            ]
        rows.append(row)
    headers = ["gunicorn"]
    for concurrency in concurrencies:
        headers += [
            f"req/s @{concurrency}",
            f"p99 ms @{concurrency}",
            f"vs {MAKE_RUN_WEB[0]}x{MAKE_RUN_WEB[1]} @{concurrency}",
        ]
    print(support.table(headers, rows))


def profile_list_page(seed: Seed, *, requests: int = 100) -> None:
    """cProfile of list pages served in-process, by own time: where the page's CPU goes."""
    import cProfile
    import io
    import pstats

    from django.test import Client

    client = Client()
    headers = {"HTTP_AUTHORIZATION": auth_header(seed, READ_USER)["Authorization"]}
    for _ in range(10):
        client.get(LIST_PATH, **headers)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.get(LIST_PATH, **headers)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    print(f"\ncProfile of {requests} list pages in-process, by own time:")
    print("\n".join("  " + line for line in out.getvalue().splitlines() if line.strip()))
    out = io.StringIO()
    project = r"nodeclusters|rest_framework/mixins|prefetch"
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(project)
    print("the same, by cumulative time, the project's functions and the prefetch machinery:")
    print("\n".join("  " + line for line in out.getvalue().splitlines() if line.strip()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32", help="concurrent clients per cell, comma-separated")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each cell")
    parser.add_argument("--max-requests", type=int, default=3000, help="requests per cell at most")
    parser.add_argument("--workers", type=int, default=MAKE_RUN_WEB[0])
    parser.add_argument("--threads", type=int, default=MAKE_RUN_WEB[1])
    parser.add_argument("--clusters", type=int, default=100, help="clusters of the reading user")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the gunicorn shape sweep")
    parser.add_argument("--sweep-seconds", type=float, default=3.0)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the list page")
    args = parser.parse_args(argv)
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    started = time.monotonic()
    # Connections live longer than the run (production keeps them 60 s), so no backend is replaced mid-cell and the
    # database CPU of every request is counted.
    with support.bench_environment(env={"LOG_LEVEL": "WARNING", "DATABASE_CONN_MAX_AGE": "600"}) as env:
        print(support.machine_summary())
        seed = seed_data(clusters=args.clusters, nodes=6, actions=5)
        print(f"seed: {args.clusters} clusters x (6 nodes + 5 actions) for {READ_USER}; writes go to {WRITE_USER}\n")
        queries_ok = query_counts(seed)
        if args.profile:
            profile_list_page(seed)
        if args.sweep:
            sweep(env, seed, seconds=args.sweep_seconds, concurrencies=[8, 32])
        with Gunicorn(env=env, workers=args.workers, threads=args.threads) as server:
            print(f"\nload: gunicorn {server.label}, {args.seconds:.1f} s or {args.max_requests} requests per cell")
            for scenario in SCENARIOS:
                print(f"  {scenario:15} {SCENARIO_TEXT[scenario]}")
            with support.MemorySampler([server.process.pid]) as memory:
                scenarios = Scenarios(seed)
                warm_up(server, scenarios)
                results = run_matrix(
                    server, scenarios, concurrencies=concurrencies, seconds=args.seconds, max_requests=args.max_requests
                )
            ratio_ok = print_matrix(results, concurrencies)
            print(memory.summary(f"gunicorn master + workers ({server.label})"))
    print(
        f"bench.api finished in {time.monotonic() - started:.0f} s; queries {'on' if queries_ok else 'OFF'} target, "
        f"ratios to the baselines {'on' if ratio_ok else 'OFF'} target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
