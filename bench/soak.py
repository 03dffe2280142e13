"""Soak of the embedded default: `make run`'s processes while clusters scale up and down and a client reads.

    python -m bench.soak [--minutes 5] [--clusters 3] [--max-nodes 4] [--seed 0]

`manage.py runstack` (web, worker, beat: exactly what `make run` starts) on its own var dir and free 127.0.0.1
ports, with a 2 s sweep and health-check interval (`ENGINE_SWEEP_INTERVAL=2 ENGINE_HEALTH_CHECK_INTERVAL=2`, the
settings under which kombu's filesystem transport took the worker down within minutes). Over HTTP, with the API
key the banner printed: a few clusters of up to `--max-nodes` nodes are created and deployed; a writer scales a
random one to a random other size every 0.5-2 s and now and then terminates one and creates a replacement; a
reader lists clusters, nodes and actions four times a second. Then the writer stops and the run waits for
convergence. It passes when: no child of runstack exited (no restart line), no "Unrecoverable error" or
CRITICAL line on the console, every request answered as expected, every cluster is Deployed (Empty cluster at 0)
with current_num_nodes == target_num_nodes, every terminated one Terminated, and the simulated cloud's live
instances (rows in the stack's SQLite database) match the live Node rows one to one.

`tests/operations/test_soak.py` runs `soak()` at CI size on `tests.support.stack.RunStack`; this module starts the
stack itself (`Stack`), since benchmarks do not import the tests.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import support

#: The repro of the issue: the sweep and the health checks every 2 s.
SOAK_ENV = {"ENGINE_SWEEP_INTERVAL": "2", "ENGINE_HEALTH_CHECK_INTERVAL": "2"}
#: Console lines that fail a soak: a child that exited (runstack's restart line), a worker's fatal error, anything
#: logged CRITICAL (Celery logs an undecodable message body that way), a broker row moved aside as undecodable.
CONSOLE_PROBLEMS = re.compile(
    r"^.*(?:runstack: \S+ exited with code|Unrecoverable error|CRITICAL|cannot be decoded).*$", re.MULTILINE
)
REGION = "/api/v1/region/digitalocean/lon1/"
NODE_TYPE = "/api/v1/nodetype/digitalocean/1gb/"
READ_PATHS = ("/api/v1/nodecluster/?limit=100", "/api/v1/node/?limit=100", "/api/v1/action/?limit=25")


class StackClient:
    """The few API calls a soak makes, with the ApiKey header `make run` prints; answers are checked by callers.

    A 429 is waited out as its Retry-After says, as a well-behaved client does (the key's rate limit is on).
    """

    def __init__(self, url: str, auth_header: str) -> None:
        # Pooled connections are dropped well before the server's keep-alive closes them (75 s), so no request is
        # sent on a connection the server is closing at that moment.
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": auth_header, "Accept": "application/json"},
            timeout=30,
            limits=httpx.Limits(keepalive_expiry=30),
        )

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, **kwargs) -> httpx.Response:
        for _ in range(10):
            answer = self.http.request(method, path, **kwargs)
            if answer.status_code != 429:
                return answer
            time.sleep(float(answer.headers.get("Retry-After") or 1))
        return answer

    def create_cluster(self, name: str, target: int) -> str:
        answer = self.send(
            "POST",
            "/api/v1/nodecluster/",
            json={"name": name, "region": REGION, "node_type": NODE_TYPE, "target_num_nodes": target},
        )
        _expect(answer, 201)
        uuid = answer.json()["uuid"]
        _expect(self.send("POST", f"/api/v1/nodecluster/{uuid}/deploy/"), 202)
        return uuid

    def scale(self, uuid: str, target: int) -> httpx.Response:
        return self.send("PATCH", f"/api/v1/nodecluster/{uuid}/", json={"target_num_nodes": target})

    def terminate(self, uuid: str) -> httpx.Response:
        return self.send("DELETE", f"/api/v1/nodecluster/{uuid}/")

    def cluster(self, uuid: str) -> dict:
        answer = self.send("GET", f"/api/v1/nodecluster/{uuid}/")
        _expect(answer, 200)
        return answer.json()

    def clusters(self) -> dict[str, dict]:
        """Every cluster of the key's user (terminated ones too), by uuid, in one request."""
        answer = self.send("GET", "/api/v1/nodecluster/?limit=1000")
        _expect(answer, 200)
        return {cluster["uuid"]: cluster for cluster in answer.json()["objects"]}


def _expect(answer: httpx.Response, *statuses: int) -> None:
    if answer.status_code not in statuses:
        raise AssertionError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")


@dataclass
class SoakResult:
    """What a soak did and what it found wrong (`problems` empty means it passed)."""

    seconds: float = 0.0
    scales: int = 0
    creates: int = 0
    terminates: int = 0
    reads: int = 0
    read_latencies: list[float] = field(default_factory=list)
    converged_after: float | None = None
    live_clusters: int = 0
    live_nodes: int = 0
    broker: str = ""
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        latencies = self.read_latencies
        converged = f"{self.converged_after:.1f} s" if self.converged_after is not None else "NOT converged"
        return (
            f"soak: {self.seconds:.0f} s of load: {self.scales} scales, {self.creates} creates, "
            f"{self.terminates} terminates, {self.reads} reads (p50 {support.percentile(latencies, 0.5) * 1000:.0f}"
            f" ms, p99 {support.percentile(latencies, 0.99) * 1000:.0f} ms); converged {converged} after the load "
            f"stopped: {self.live_clusters} live clusters, {self.live_nodes} live nodes; {self.broker}; "
            + (f"{len(self.problems)} problem(s)" if self.problems else "no problem")
        )


def soak(
    *,
    url: str,
    auth_header: str,
    var_dir: Path,
    console: Callable[[], str],
    seconds: float,
    clusters: int = 3,
    max_nodes: int = 4,
    seed: int = 0,
    converge_timeout: float = 120,
    log: Callable[[str], None] = print,
) -> SoakResult:
    """Scale clusters up and down for `seconds` while reading, then check the stack converged and stayed up."""
    result = SoakResult()
    rng = random.Random(seed)
    client = StackClient(url, auth_header)
    live: list[str] = []
    terminated: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        for index in range(clusters):
            live.append(client.create_cluster(f"soak-{seed}-{index}", max_nodes if index == 0 else rng.randint(1, 4)))
            result.creates += 1
        started = time.monotonic()

        def write() -> None:
            while not stop.is_set():
                with lock:
                    uuid = rng.choice(live)
                if rng.random() < 0.08:
                    answer = client.terminate(uuid)
                    if answer.status_code != 202:
                        result.problems.append(f"terminate {uuid}: {answer.status_code} {answer.text[:300]}")
                    replacement = client.create_cluster(f"soak-{seed}-{result.creates}", rng.randint(1, max_nodes))
                    with lock:
                        live.remove(uuid)
                        terminated.append(uuid)
                        live.append(replacement)
                    result.terminates += 1
                    result.creates += 1
                else:
                    current = client.cluster(uuid)["target_num_nodes"]
                    target = rng.choice([size for size in range(max_nodes + 1) if size != current])
                    answer = client.scale(uuid, target)
                    if answer.status_code not in (200, 202):
                        result.problems.append(f"scale {uuid} to {target}: {answer.status_code} {answer.text[:300]}")
                    result.scales += 1
                stop.wait(rng.uniform(0.5, 2.0))

        def read() -> None:
            turn = 0
            while not stop.is_set():
                path = READ_PATHS[turn % len(READ_PATHS)]
                turn += 1
                sent = time.monotonic()
                answer = client.send("GET", path)
                result.read_latencies.append(time.monotonic() - sent)
                result.reads += 1
                if answer.status_code != 200:
                    result.problems.append(f"GET {path}: {answer.status_code} {answer.text[:300]}")
                stop.wait(0.25)

        threads = [threading.Thread(target=_guarded(work, result, stop), name=work.__name__) for work in (write, read)]
        for thread in threads:
            thread.start()
        next_report = started + 60
        while time.monotonic() - started < seconds and not stop.is_set():
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += 60
                log(
                    f"  {time.monotonic() - started:.0f} s: {result.scales} scales, {result.creates} creates, "
                    f"{result.reads} reads, {len(result.problems)} problem(s)"
                )
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        result.seconds = time.monotonic() - started
        stopped = time.monotonic()
        problems = wait_converged(client, var_dir, live=live, terminated=terminated, timeout=converge_timeout)
        if problems:
            result.problems.extend(problems)
        else:
            result.converged_after = time.monotonic() - stopped
        result.live_clusters = len(live)
        clusters = client.clusters()
        result.live_nodes = sum(clusters[uuid]["current_num_nodes"] for uuid in live)
    finally:
        stop.set()
        client.close()
    result.problems.extend(f"console: {line.strip()[:300]}" for line in CONSOLE_PROBLEMS.findall(console()))
    result.broker = broker_summary(var_dir / "broker.sqlite3")
    return result


def broker_summary(database: Path) -> str:
    """Rows left in the embedded broker's message table (consumed ones are deleted) and rows moved aside."""
    if not database.exists():
        return "broker: not the embedded SQLite one"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        waiting = connection.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
        aside = connection.execute("SELECT count(*) FROM kombu_message_undecodable").fetchone()[0]
    finally:
        connection.close()
    return f"broker: {waiting} message rows left, {aside} moved aside as undecodable"


def _guarded(work: Callable[[], None], result: SoakResult, stop: threading.Event) -> Callable[[], None]:
    """A client thread that records its failure (a refused request, a dropped connection) and ends the load."""

    def run() -> None:
        try:
            work()
        except Exception as error:
            result.problems.append(f"{work.__name__} thread: {type(error).__name__}: {error}"[:500])
            stop.set()

    return run


def wait_converged(client: StackClient, var_dir: Path, *, live, terminated, timeout: float) -> list[str]:
    """Wait until `convergence_problems` finds none; return what it still finds at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        problems = convergence_problems(client, var_dir, live=live, terminated=terminated)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1)


def convergence_problems(client: StackClient, var_dir: Path, *, live, terminated) -> list[str]:
    """Every live cluster at its target (Deployed, or Empty cluster at 0), every terminated one gone, no leak."""
    problems = []
    clusters = client.clusters()
    for uuid in live:
        cluster = clusters[uuid]
        target, current, state = cluster["target_num_nodes"], cluster["current_num_nodes"], cluster["state"]
        expected = "Deployed" if target > 0 else "Empty cluster"
        if state != expected or current != target:
            problems.append(f"cluster {uuid}: {state} with {current} of {target} nodes (expected {expected})")
    for uuid in terminated:
        state = clusters[uuid]["state"]
        if state != "Terminated":
            problems.append(f"terminated cluster {uuid}: {state}")
    return problems + instance_problems(var_dir / "db.sqlite3")


def instance_problems(database: Path) -> list[str]:
    """The simulated cloud's live instances against the live Node rows, one to one (read from the SQLite file)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        instances = {
            uuid_module.UUID(node_uuid).hex: instance_id
            for node_uuid, instance_id in connection.execute(
                "SELECT node_uuid, instance_id FROM providers_simulatedinstance WHERE terminated_at IS NULL"
            )
        }
        nodes = {
            uuid_module.UUID(node_uuid).hex: (instance_id, state)
            for node_uuid, instance_id, state in connection.execute(
                "SELECT uuid, instance_id, state FROM nodeclusters_node WHERE state != 'Terminated'"
            )
        }
    finally:
        connection.close()
    problems = [f"leaked instance {instances[uuid]} (node {uuid} is not live)" for uuid in instances.keys() - nodes]
    problems += [f"node {uuid} ({nodes[uuid][1]}) has no live instance" for uuid in nodes.keys() - instances]
    problems += [
        f"node {uuid} records instance {nodes[uuid][0]!r}, the cloud has {instances[uuid]}"
        for uuid in nodes.keys() & instances.keys()
        if nodes[uuid][0] != instances[uuid]
    ]
    return problems


class Stack:
    """`manage.py runstack` on free ports and its own var dir, for this benchmark (the tests use RunStack)."""

    def __init__(self, var_dir: Path, env: dict[str, str]) -> None:
        self.var_dir = var_dir
        self.port = support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = var_dir / "runstack.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            {
                "TUTUM_VAR_DIR": str(var_dir),
                "PORT": str(self.port),
                "STREAM_PORT": str(support.free_port()),
                "HOST": "127.0.0.1",
                "TUTUM_ADMIN_PASSWORD": "bench-soak-password",
                "LOG_FORMAT": "plain",
                "PYTHONUNBUFFERED": "1",
                **env,
            }
        )
        self.process: subprocess.Popen | None = None
        self.auth_header = ""

    def start(self, timeout: float = 90) -> Stack:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack"],
            cwd=support.ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            user = re.findall(r"export TUTUM_USER=(\S+)", self.output())
            key = re.findall(r"export TUTUM_APIKEY=(\S+)", self.output())
            if user and key and _answers(f"{self.url}/healthz"):
                self.auth_header = f"ApiKey {user[-1]}:{key[-1]}"
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runstack did not come up\n{self.output()[-4000:]}")
            time.sleep(0.25)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """Ctrl-C, as a user stops it."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="minutes of load")
    parser.add_argument("--clusters", type=int, default=3, help="clusters scaled at once")
    parser.add_argument("--max-nodes", type=int, default=4, help="the largest target")
    parser.add_argument("--seed", type=int, default=0, help="seeds the writer's choices")
    parser.add_argument("--converge-timeout", type=float, default=120, help="seconds allowed to converge after")
    parser.add_argument("--broker-url", help="CELERY_BROKER_URL for the stack (default: the embedded default)")
    parser.add_argument("--keep", action="store_true", help="keep the var dir (it is always kept on failure)")
    args = parser.parse_args(argv)
    var_dir = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    env = dict(SOAK_ENV)
    if args.broker_url:
        env["CELERY_BROKER_URL"] = args.broker_url
    print(
        f"soak: runstack with {', '.join(f'{key}={value}' for key, value in env.items())}, {args.clusters} clusters "
        f"of 0-{args.max_nodes} nodes, {args.minutes:g} min of load; var dir {var_dir}",
        flush=True,
    )
    started = time.monotonic()
    stack = Stack(var_dir, env).start()
    try:
        result = soak(
            url=stack.url,
            auth_header=stack.auth_header,
            var_dir=var_dir,
            console=stack.output,
            seconds=args.minutes * 60,
            clusters=args.clusters,
            max_nodes=args.max_nodes,
            seed=args.seed,
            converge_timeout=args.converge_timeout,
            log=lambda line: print(line, flush=True),
        )
    finally:
        code = stack.stop()
    orphans = _orphans(var_dir)
    if orphans:
        result.problems.append(f"processes left after Ctrl-C: {orphans}")
    print(result.summary())
    print(f"  runstack exit code after Ctrl-C: {code}")
    for problem in result.problems:
        print(f"  PROBLEM: {problem}")
    if result.problems or args.keep:
        print(f"  kept {var_dir} (runstack.log is the console)")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)
    print(f"bench.soak finished in {time.monotonic() - started:.0f} s")
    return 1 if result.problems else 0


def _orphans(var_dir: Path) -> list[int]:
    """Processes still running with this var dir in their environment (children runstack should have stopped)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("TUTUM_VAR_DIR") == str(var_dir):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


if __name__ == "__main__":
    sys.exit(main())
