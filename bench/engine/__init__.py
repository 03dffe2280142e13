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
import time

from bench import support

from .convergence import part_convergence
from .fleet import part_fleet
from .reconcile import part_reconcile
from .workers import BROKER_URL, DEFAULT_LAYOUT, DEFAULT_WEB, DEFAULT_WORKER_NICE


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
