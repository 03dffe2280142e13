"""Stream API delivery: how soon a committed change reaches every open events socket, and what a socket costs.

    python -m bench.stream [--sockets 100,1000] [--users 10] [--changes 50] [--interval 0.05] [--poll-interval 0.25]

The stream server as it is deployed (uvicorn serving `tutum_api.asgi`, `--ws websockets-sansio`) on the benchmark's
PostgreSQL database. A separate client process (asyncio, the `websockets` library) opens N sockets on
`/v1/events`, either spread over `--users` users (each event fans out to N / users sockets) or all for one user
(fan-out N). This process then creates `--changes` node clusters through `services.node_cluster_create`, one
every `--interval` seconds, and stamps each commit; the client stamps, for every socket, the arrival of the
matching `nodecluster` `create` event (by `uuid`). Latency is arrival minus commit (CLOCK_MONOTONIC is one clock
for every process). Each case runs twice, on a fresh server each time: woken by Redis hints (db 13, flushed
before and after) and with hints off, polling the outbox every `--poll-interval` seconds. Memory per socket is
the uvicorn process's RSS growth over N sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil

from bench import support

REDIS_URL = "redis://127.0.0.1:6379/13"
CONTEXT_PATH = "/bench/stream/"
#: The issue's goal: an event reaches every one of 1,000 sockets within a second of its commit.
GOAL_SECONDS = 1.0
SINGLE_USER = "stream-solo"
WARM_UP_USER = "stream-warm-up"


# --- the client process -------------------------------------------------------------------------------------------


class Sockets:
    """The client side: many `/v1/events` sockets in one asyncio process, stamping the arrival of create events."""

    def __init__(self) -> None:
        self.sockets: list = []
        self.owners: list[int] = []
        self.arrivals: list[dict[str, float]] = []
        self.tasks: list[asyncio.Task] = []
        self.closed: list[str] = []
        self.unexpected: list[str] = []
        self.messages = 0
        self.closing = False

    async def open(self, *, url: str, groups: list[dict], batch: int) -> dict:
        from websockets.asyncio.client import connect

        wanted = [(group["owner"], group["header"]) for group in groups for _ in range(group["count"])]
        failures: list[str] = []
        already = len(self.sockets)

        async def one(owner: int, header: str) -> None:
            try:
                # No client pings: the server pings every 20 s and the client answers; that is what is measured.
                socket = await connect(
                    url, additional_headers={"Authorization": header}, ping_interval=None, open_timeout=30
                )
            except Exception as error:
                failures.append(f"{type(error).__name__}: {error}")
                return
            index = len(self.sockets)
            self.sockets.append(socket)
            self.owners.append(owner)
            self.arrivals.append({})
            self.tasks.append(asyncio.get_running_loop().create_task(self._receive(index, socket)))

        started = time.monotonic()
        for start in range(0, len(wanted), batch):
            await asyncio.gather(*(one(owner, header) for owner, header in wanted[start : start + batch]))
        seconds = time.monotonic() - started
        opened = len(self.sockets) - already
        return {"opened": opened, "failed": failures[:5], "failures": len(failures), "seconds": seconds}

    async def _receive(self, index: int, socket) -> None:
        from websockets.exceptions import ConnectionClosed

        arrivals = self.arrivals[index]
        try:
            async for message in socket:
                now = time.monotonic()  # stamped before any work of the client's own
                self.messages += 1
                event = orjson.loads(message)
                if event.get("type") == "nodecluster" and event.get("action") == "create":
                    arrivals[event["uuid"]] = now
                elif event.get("type") not in ("nodecluster", "action", "node"):
                    self.unexpected.append(str(message)[:200])
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed.append(f"socket {index}: code {socket.close_code} {socket.close_reason!r}")

    async def expect(self, *, commits: dict[str, list], wait: float) -> dict:
        """Wait (at most `wait` s) until every socket has every create of its owner; then the latencies."""
        by_owner: dict[int, list[str]] = {}
        for uuid, (owner, _) in commits.items():
            by_owner.setdefault(owner, []).append(uuid)
        expected = sum(len(by_owner.get(owner, ())) for owner in self.owners)

        def delivered() -> int:
            return sum(
                sum(1 for uuid in by_owner.get(owner, ()) if uuid in arrivals)
                for owner, arrivals in zip(self.owners, self.arrivals, strict=True)
            )

        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and delivered() < expected:
            await asyncio.sleep(0.05)
        latencies: list[float] = []
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        for owner, arrivals in zip(self.owners, self.arrivals, strict=True):
            for uuid in by_owner.get(owner, ()):
                if uuid in arrivals:
                    latency = arrivals[uuid] - commits[uuid][1]
                    latencies.append(latency)
                    first[uuid] = min(first.get(uuid, latency), latency)
                    last[uuid] = max(last.get(uuid, latency), latency)
        return {
            "expected": expected,
            "latencies": latencies,
            "first": first,
            "last": last,
            "messages": self.messages,
            "closed": self.closed[:5],
            "closed_count": len(self.closed),
            "unexpected": self.unexpected[:5],
            "unexpected_count": len(self.unexpected),
            "open": sum(1 for task in self.tasks if not task.done()),
        }

    async def close(self) -> None:
        self.closing = True
        for start in range(0, len(self.sockets), 200):
            await asyncio.gather(
                *(socket.close() for socket in self.sockets[start : start + 200]), return_exceptions=True
            )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def client_loop() -> None:
    """Answer one JSON line on stdout to each command line on stdin (`open`, `expect`, `close`)."""
    sockets = Sockets()
    try:
        for _ in range(100):  # a handful of commands per run; bounded all the same
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            command = orjson.loads(line)
            op = command.pop("op")
            if op == "close":
                await sockets.close()
                answer = {"closed": True}
            else:
                answer = await getattr(sockets, op)(**command)
            sys.stdout.write(orjson.dumps(answer).decode() + "\n")
            sys.stdout.flush()
            if op == "close":
                return
    finally:
        sockets.closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sockets.close(), timeout=10)


class ClientProcess:
    """`python -m bench.stream --client`, driven one command line at a time, each answer awaited with a timeout."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ClientProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.stream", "--client"],
            cwd=support.ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("ab"),
            start_new_session=True,
        )
        return self

    def call(self, op: str, *, timeout: float, **arguments) -> dict:
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(orjson.dumps({"op": op, **arguments}) + b"\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"the client did not answer {op!r} in {timeout:.0f} s:\n{support.tail(self.log_path)}")
        return orjson.loads(line)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *exc_info) -> None:
        if self.process is None:
            return
        if self.process.poll() is None and exc_info[0] is None:
            with contextlib.suppress(Exception):
                self.call("close", timeout=30)
        support.stop(self.process)


# --- the server ---------------------------------------------------------------------------------------------------


class StreamServer:
    """uvicorn serving the stream application on a free 127.0.0.1 port, with or without Redis hints."""

    def __init__(
        self, env: dict[str, str], *, hints: bool, poll_interval: float, log_path: Path, ws: str = "websockets-sansio"
    ) -> None:
        self.ws = ws
        self.env = {**env, "DJANGO_SETTINGS_MODULE": "tutum_api.settings", "LOG_FORMAT": "plain"}
        for name in ("STREAM_REDIS_URL", "REDIS_URL", "CELERY_BROKER_URL", "STREAM_POLL_INTERVAL"):
            self.env.pop(name, None)  # REDIS_URL and a Redis broker would turn the hints on as well
        if hints:
            self.env["STREAM_REDIS_URL"] = REDIS_URL  # and the production poll interval (2 s) as a fallback
        else:
            self.env["STREAM_POLL_INTERVAL"] = str(poll_interval)
        self.port = support.free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/events"

    def __enter__(self) -> StreamServer:
        args = ["uvicorn", "tutum_api.asgi:application", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--ws", self.ws, "--lifespan", "off", "--no-access-log"]
        self.process = support.spawn(args, env=self.env, log_path=self.log_path)
        if not support.wait_for(self._ready, timeout=30, interval=0.1):
            support.stop(self.process)
            raise RuntimeError(f"the stream server did not answer in 30 s:\n{support.tail(self.log_path)}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{support.tail(self.log_path)}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def __exit__(self, *exc_info) -> None:
        support.stop(self.process)

    def problems(self) -> list[str]:
        """Log lines that should not be there: tracebacks, errors, warnings (a lost Redis hint is one)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        markers = ("Traceback", "ERROR", "WARNING", "CRITICAL")
        return [line for line in text.splitlines() if any(marker in line for marker in markers)]


# --- one case -----------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """N sockets over some users, with hints on or off, and what was measured."""

    sockets: int
    users: int
    hints: bool
    opened: int = 0
    open_seconds: float = 0.0
    expected: int = 0
    latencies: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    messages: int = 0
    rss_idle: int = 0
    rss_before: int = 0
    rss_open: int = 0
    rss_after: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    changes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def layout(self) -> str:
        return f"{self.users} x {self.sockets // self.users}"

    @property
    def fan_out(self) -> int:
        return self.sockets // self.users

    @property
    def mode(self) -> str:
        return "Redis hint" if self.hints else "polling"

    @property
    def last_trend(self) -> tuple[float, float]:
        fifth = max(1, len(self.last) // 5)
        return _ms(self.last[:fifth], 0.5), _ms(self.last[-fifth:], 0.5)

    @property
    def delivered(self) -> float:
        return len(self.latencies) / self.expected if self.expected else float("nan")


def seed_users(count: int) -> dict[str, tuple[object, str]]:
    """The users the sockets belong to, each with an API key: `stream-0`.., `stream-solo`, `stream-warm-up`."""
    from django.contrib.auth import get_user_model

    from nodeclusters import services

    users = {}
    for name in [f"stream-{index}" for index in range(count)] + [SINGLE_USER, WARM_UP_USER]:
        user, _ = get_user_model().objects.get_or_create(username=name)
        users[name] = (user, services.api_key_create(user=user)[1])
    return users


def make_changes(owners: list, *, count: int, interval: float) -> dict[str, list]:
    """`count` node cluster creates, round-robin over `owners`, paced; {cluster uuid: [owner id, commit time]}."""
    from django.db import transaction

    from nodeclusters import services
    from nodeclusters.models import NodeType, Region

    region = Region.objects.select_related("provider").get(provider__name="digitalocean", name="lon1")
    node_type = NodeType.objects.select_related("provider").get(provider__name="digitalocean", name="1gb")
    context = services.RequestContext(method="POST", path=CONTEXT_PATH, user_agent="bench.stream")
    commits: dict[str, list] = {}
    started = time.monotonic()
    for index in range(count):
        delay = started + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        owner = owners[index % len(owners)]
        stamp: list[float] = []
        with transaction.atomic():
            # Registered first, so it runs first after COMMIT, before the service's own hint is published.
            transaction.on_commit(lambda stamp=stamp: stamp.append(time.monotonic()))
            cluster, _ = services.node_cluster_create(
                owner=owner,
                name=f"stream-{index}",
                node_type=node_type,
                region=region,
                context=context,
                target_num_nodes=0,
            )
        commits[str(cluster.uuid)] = [owner.pk, stamp[0]]
    return commits


def run_case(
    case: Case, *, env, users, var_dir: Path, changes: int, interval: float, poll: float, batch: int, ws: str
) -> Case:
    from django.test.utils import override_settings

    names = [SINGLE_USER] if case.users == 1 else [f"stream-{index}" for index in range(case.users)]
    owners = [users[name] for name in names]
    groups = [
        {"owner": user.pk, "header": f"ApiKey {user.username}:{key}", "count": case.sockets // case.users}
        for user, key in owners
    ]
    tag = f"{case.sockets}-{case.users}-{'hint' if case.hints else 'poll'}"
    server = StreamServer(env, hints=case.hints, poll_interval=poll, log_path=var_dir / f"uvicorn-{tag}.log", ws=ws)
    # This process announces its commits only where the server listens for them.
    with (
        override_settings(STREAM_REDIS_URL=REDIS_URL if case.hints else ""),
        server,
        ClientProcess(env=env, log_path=var_dir / f"client-{tag}.log") as client,
    ):
        time.sleep(0.5)
        case.rss_idle = server.rss()
        # One socket of a user without changes first: the bus starts and the imports are made on the first one,
        # which is not what each further socket costs.
        warm_up_user, warm_up_key = users[WARM_UP_USER]
        warm_up = {"owner": warm_up_user.pk, "header": f"ApiKey {WARM_UP_USER}:{warm_up_key}", "count": 1}
        if client.call("open", timeout=60, url=server.url, groups=[warm_up], batch=1)["opened"] != 1:
            raise RuntimeError(f"the warm-up socket did not open:\n{support.tail(server.log_path)}")
        time.sleep(0.5)
        case.rss_before = server.rss()
        opened = client.call("open", timeout=120 + case.sockets * 0.2, url=server.url, groups=groups, batch=batch)
        case.opened, case.open_seconds = opened["opened"], opened["seconds"]
        if opened["failures"]:
            case.notes.append(f"{opened['failures']} sockets failed to open, e.g. {opened['failed']}")
        time.sleep(0.5)
        case.rss_open = server.rss()
        processes = [psutil.Process(server.process.pid), psutil.Process(client.pid)]
        cpu_before = support.cpu_seconds(processes)
        commits = make_changes([user for user, _ in owners], count=changes, interval=interval)
        case.changes = len(commits)
        wait = max(10.0, changes * interval)
        result = client.call("expect", timeout=wait + 60, commits=commits, wait=wait)
        cpu_after = support.cpu_seconds(processes)
        case.server_cpu = cpu_after[server.process.pid] - cpu_before[server.process.pid]
        case.client_cpu = cpu_after[client.pid] - cpu_before[client.pid]
        case.rss_after = server.rss()
        case.expected = result["expected"]
        in_commit_order = sorted(commits, key=lambda uuid: commits[uuid][1])
        case.latencies = result["latencies"]
        case.first = [result["first"][uuid] for uuid in in_commit_order if uuid in result["first"]]
        case.last = [result["last"][uuid] for uuid in in_commit_order if uuid in result["last"]]
        case.messages = result["messages"]
        if result["closed_count"]:
            case.notes.append(f"{result['closed_count']} sockets closed by the server, e.g. {result['closed']}")
        if result["unexpected_count"]:
            case.notes.append(f"{result['unexpected_count']} unexpected messages, e.g. {result['unexpected']}")
        if result["open"] != case.opened + 1:
            case.notes.append(f"{case.opened + 1 - result['open']} sockets no longer open after the changes")
    problems = server.problems()
    if problems:
        case.notes.append(f"{len(problems)} warning/error lines in the server log, e.g. {problems[:3]}")
    return case


# --- report -------------------------------------------------------------------------------------------------------


def _ms(values: list[float], fraction: float) -> float:
    return support.percentile(values, fraction) * 1000


def print_cases(cases: list[Case], *, changes: int, interval: float) -> None:
    latency_rows, cost_rows = [], []
    mib = 2**20
    for case in cases:
        name = f"{case.sockets} sockets, {case.layout}"
        latency_rows.append(
            [
                name,
                case.fan_out,
                case.mode,
                f"{case.opened}/{case.sockets}",
                f"{case.delivered * 100:.2f}",
                _ms(case.first, 0.5),
                _ms(case.latencies, 0.5),
                _ms(case.latencies, 0.99),
                max(case.latencies, default=float("nan")) * 1000,
                _ms(case.last, 0.5),
                "{:.0f} / {:.0f}".format(*case.last_trend),
            ]
        )
        messages = max(case.messages, 1)
        kib = 1024 * max(case.opened, 1)
        cost_rows.append(
            [
                name,
                case.mode,
                case.open_seconds,
                case.server_cpu * 1000 / max(case.changes, 1),
                case.server_cpu * 1e6 / messages,
                case.client_cpu * 1e6 / messages,
                f"{case.rss_idle / mib:.1f} / {case.rss_before / mib:.1f} / {case.rss_open / mib:.1f} / "
                f"{case.rss_after / mib:.1f}",
                (case.rss_open - case.rss_before) / kib,
                (case.rss_after - case.rss_before) / kib,
            ]
        )
    headers = ["case (users x sockets each)", "fan-out", "wake-up", "open", "delivered %", "first p50 ms"]
    headers += ["p50 ms", "p99 ms", "max ms", "last p50 ms", "last early / late ms"]
    print(support.table(headers, latency_rows))
    print(f"  {changes} node cluster creates per case, one every {interval * 1000:.0f} ms, round-robin over the users.")
    print("  Latency: commit -> arrival of the cluster's create event, over every (socket, change) pair; first / last")
    print("  p50: the median over changes of the socket each change reached first / last (wake-up vs whole fan-out);")
    print("  early / late: that last-socket latency, median over the first and the final fifth of the changes (a")
    print("  server that cannot keep up shows a late figure growing with the run's length).")
    print()
    headers = ["case (users x sockets each)", "wake-up", "open s", "server CPU ms/change", "server us/msg"]
    headers += ["client us/msg", "RSS MiB idle / 1 / N / after", "KiB/socket open", "KiB/socket after"]
    print(support.table(headers, cost_rows))
    print("  Each create writes two events (the cluster's and its action's): a socket gets 2 messages per change of")
    print("  its user, and us/msg divides the process's CPU over the changes by every message sent. RSS of the uvicorn")
    print("  process: idle, with one warm-up socket (bus started), with the N sockets, after the changes; KiB/socket")
    print("  is the growth from the warm-up socket to N sockets (open) and to after the changes, divided by N.")
    for case in cases:
        for note in case.notes:
            print(f"  {case.sockets} sockets, {case.layout}, {case.mode}: {note}")


def print_ratios(cases: list[Case]) -> bool:
    print("\npolling / Redis hint, measured side by side (what the hint buys):")
    on_target = True
    pairs: dict[tuple[int, int], dict[bool, Case]] = {}
    for case in cases:
        pairs.setdefault((case.sockets, case.users), {})[case.hints] = case
    for (sockets, _), pair in pairs.items():
        if len(pair) < 2:
            continue
        hint, poll = pair[True], pair[False]
        ratios = [
            f"{label} {_ms(poll_values, fraction):.0f} / {_ms(hint_values, fraction):.0f} ms = "
            f"{_ms(poll_values, fraction) / max(_ms(hint_values, fraction), 1e-9):.1f}"
            for label, poll_values, hint_values, fraction in (
                ("p50", poll.latencies, hint.latencies, 0.5),
                ("p99", poll.latencies, hint.latencies, 0.99),
                ("first-socket p50", poll.first, hint.first, 0.5),
            )
        ]
        print(f"  {sockets} sockets, {hint.layout}: " + ";  ".join(ratios))
    print(f"\ngoal: every event on every socket within {GOAL_SECONDS:g} s of its commit at 1,000 sockets (Redis hint):")
    for case in cases:
        if not case.hints:
            continue
        worst = max(case.latencies, default=float("inf"))
        met = case.delivered == 1.0 and worst <= GOAL_SECONDS and not case.notes
        if case.sockets >= 1000:
            on_target &= met
        print(
            f"  {case.sockets} sockets, {case.layout}: delivered {case.delivered * 100:.2f} %, "
            f"p99 {_ms(case.latencies, 0.99):.0f} ms, max {worst * 1000:.0f} ms: {'met' if met else 'NOT met'}"
        )
    return on_target


# --- main ---------------------------------------------------------------------------------------------------------


def raise_file_limit(sockets: int) -> None:
    """Each socket is a descriptor in the client and one in the server; children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = sockets + 1024
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"{sockets} sockets need {wanted} file descriptors; the hard limit is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="1000", help="open sockets per case, comma-separated (e.g. 100,1000)")
    parser.add_argument("--users", type=int, default=10, help="users the sockets are spread over (the other case: 1)")
    parser.add_argument("--changes", type=int, default=50, help="node cluster creates per case")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two creates")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="STREAM_POLL_INTERVAL with hints off")
    parser.add_argument("--batch", type=int, default=50, help="sockets the client opens at once")
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's websocket implementation (--ws)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # the client process itself
    args = parser.parse_args(argv)
    if args.client:
        asyncio.run(client_loop())
        return 0
    sizes = [int(value) for value in args.sockets.split(",")]
    raise_file_limit(max(sizes))
    started = time.monotonic()
    import redis

    hints = redis.Redis.from_url(REDIS_URL)
    with support.bench_environment(env={"LOG_LEVEL": "WARNING"}) as env:
        var_dir = Path(env["TUTUM_VAR_DIR"])
        print(support.machine_summary())
        print(
            f"stream server: uvicorn tutum_api.asgi (--ws {args.ws}), one process; client: one asyncio process "
            f"(websockets {_websockets_version()}); Redis hints on db 13, polling every {args.poll_interval:g} s "
            "with hints off (2 s with them)"
        )
        hints.flushdb()
        try:
            users = seed_users(args.users)
            cases = []
            for sockets in sizes:
                for users_count in (args.users, 1):
                    if sockets % users_count:
                        raise SystemExit(f"--sockets {sockets} is not a multiple of --users {users_count}")
                    # Alternating which mode goes first, so drift on the shared machine hits both alike.
                    order = (True, False) if len(cases) % 4 == 0 else (False, True)
                    for hinted in order:
                        case = Case(sockets=sockets, users=users_count, hints=hinted)
                        run_case(
                            case,
                            env=env,
                            users=users,
                            var_dir=var_dir,
                            changes=args.changes,
                            interval=args.interval,
                            poll=args.poll_interval,
                            batch=args.batch,
                            ws=args.ws,
                        )
                        cases.append(case)
                        print(
                            f"  done: {sockets} sockets, {case.layout}, {case.mode}: "
                            f"p50 {_ms(case.latencies, 0.5):.0f} ms, delivered {case.delivered * 100:.2f} %",
                            flush=True,
                        )
            print()
            print_cases(cases, changes=args.changes, interval=args.interval)
            on_target = print_ratios(cases)
        finally:
            with contextlib.suppress(Exception):
                hints.flushdb()
    print(
        f"bench.stream finished in {time.monotonic() - started:.0f} s; delivery {'on' if on_target else 'OFF'} target"
    )
    return 0


def _websockets_version() -> str:
    import websockets

    return websockets.__version__


if __name__ == "__main__":
    sys.exit(main())
