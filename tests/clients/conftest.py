"""Tutum's official clients, unmodified, on Python 2.7 against a live `make run` stack (`manage.py runstack`).

`.ci/official-clients` installs the CLI `tutum` 0.21.1 (with the `python-tutum` 0.21.1 it pins) and `python-tutum`
0.21.2 into their own `pip --target` directories. The clients get exactly what the banner tells a user to export
(`TUTUM_USER`, `TUTUM_APIKEY`, `TUTUM_REST_HOST`, `TUTUM_STREAM_HOST`) and nothing of the test process's
environment, so they never reach Tutum's real hosts. Without Python 2.7 or the clients these tests are skipped,
except in CI (`CI=true`), where that is a failure.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.engine import ROOT
from tests.support.stack import RunStack

CLIENTS_DIR = Path(os.environ.get("OFFICIAL_CLIENTS_DIR") or ROOT / ".venv" / "py27")
#: The CLI with the SDK it pins (its `bin/tutum` checks that pin when it starts).
CLI_DIR = CLIENTS_DIR / "tutum-0.21.1"
#: The newest SDK, on its own.
SDK_DIR = CLIENTS_DIR / "python-tutum-0.21.2"
#: A simulated region and node type of the seeded catalog, as a user would name them on the command line.
PROVIDER, REGION, NODE_TYPE = "digitalocean", "lon1", "1gb"
#: Where the clients may go when the banner names no stream host: nothing listens there, so no client ever falls
#: back to Tutum's real `wss://stream.tutum.co`.
UNREACHABLE_STREAM_HOST = "ws://127.0.0.1:9"
#: How long the engine may take for anything the simulated cloud does (instances boot in 1 s here).
CONVERGE_SECONDS = 20


def unavailable(reason: str):
    """Skip on a developer's machine; in CI the official clients must run, so a missing piece is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"official client tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _is_python27(path: str | Path) -> bool:
    try:
        answer = subprocess.run(
            [str(path), "-c", "import sys; sys.exit(sys.version_info[:2] != (2, 7))"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.returncode == 0


def find_python27() -> Path | None:
    """The same search as `.ci/official-clients`: `PYTHON27`, pyenv's 2.7 versions, then `python2.7` on PATH."""
    candidates: list[str | Path] = []
    if os.environ.get("PYTHON27"):
        candidates.append(os.environ["PYTHON27"])
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        answer = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10)
        if answer.returncode == 0 and answer.stdout.strip():
            pyenv_root = answer.stdout.strip()
    candidates.extend(sorted(Path(pyenv_root).glob("versions/2.7*/bin/python2.7"), reverse=True))
    if shutil.which("python2.7"):
        candidates.append(shutil.which("python2.7"))
    return next((Path(candidate) for candidate in candidates if _is_python27(candidate)), None)


@pytest.fixture(scope="session")
def python27() -> Path:
    found = find_python27()
    if found is None:
        unavailable("Python 2.7 is missing (set PYTHON27 or `pyenv install 2.7.18`, then run .ci/official-clients)")
    return found


@pytest.fixture(scope="session")
def cli_dir(python27) -> Path:
    if not (CLI_DIR / "bin" / "tutum").exists():
        unavailable(f"the official CLI is not installed in {CLI_DIR}; run .ci/official-clients")
    return CLI_DIR


@pytest.fixture(scope="session")
def sdk_dir(python27) -> Path:
    if not (SDK_DIR / "tutum" / "__init__.py").exists():
        unavailable(f"python-tutum 0.21.2 is not installed in {SDK_DIR}; run .ci/official-clients")
    return SDK_DIR


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(python27, tmp_path_factory) -> Iterator[RunStack]:
    """One live `make run` stack per test module: web server, stream server, a real Celery worker and beat."""
    stack = RunStack(
        var_dir=tmp_path_factory.mktemp("stack"),
        env={"SIMULATED_BOOT_SECONDS": "1", "ENGINE_POLL_INTERVAL": "0.5"},
    )
    stack.start()
    try:
        if stack.stream_host:
            address = urlsplit(stack.stream_host)
            deadline = time.monotonic() + 30
            while not _accepts_connections(address.hostname, address.port or 80):
                assert time.monotonic() < deadline, f"{stack.stream_host} never accepted a connection\n{stack.logs()}"
                time.sleep(0.2)
        yield stack
    finally:
        stack.stop()


def require_stream_host(stack: RunStack) -> None:
    """The stream clients need the banner's `TUTUM_STREAM_HOST`; without it they would dial Tutum's real host."""
    assert stack.stream_host, (
        "runstack's banner printed no `export TUTUM_STREAM_HOST=...`, so a user cannot point the clients at this "
        f"server's Stream API\n--- runstack.log (start)\n{stack.output()[:1500]}"
    )


def client_env(stack: RunStack, pythonpath: Path, home: Path, **overrides: str) -> dict[str, str]:
    """Only what a user's shell would hold after pasting the banner's exports: no proxies, no ~/.tutum."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(pythonpath),
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "TUTUM_STREAM_HOST": UNREACHABLE_STREAM_HOST,
        **stack.client_env(),
    }
    env.update(overrides)
    return env


class CliResult(NamedTuple):
    """What a shell user sees: the exit code, stdout and stderr."""

    code: int
    out: str
    err: str


class Background:
    """A Python 2.7 client running on its own; its stdout goes to a file the test reads as it grows."""

    def __init__(self, command: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.out_path = log_dir / f"{name}.out"
        self.err_path = log_dir / f"{name}.err"
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.out_path.open("wb"),
            stderr=self.err_path.open("wb"),
            start_new_session=True,
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- stdout\n{self.output()[-6000:]}\n--- stderr\n{self.errors()[-4000:]}"

    def wait_for(self, predicate: Callable[[str], object], *, timeout: float, what: str):
        """Poll the output until `predicate(output)` is truthy; fail naming `what` if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.output())
            if value:
                return value
            if self.process.poll() is not None:
                value = predicate(self.output())
                if value:
                    return value
                raise AssertionError(f"exited ({self.process.returncode}) before {what}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.describe()}")
            time.sleep(0.2)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """Ctrl-C as a user would; SIGKILL if that does not end it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            if self.wait(5) is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


def run_cli(
    interpreter, cli_dir: Path, stack, client_home: Path, args, *, timeout: float = 60, **env: str
) -> CliResult:
    """Run `<cli_dir>/bin/tutum *args` with `interpreter`, as a user would after pasting the banner's exports."""
    command = [str(interpreter), str(cli_dir / "bin" / "tutum"), *args]
    try:
        answer = subprocess.run(
            command,
            env=client_env(stack, cli_dir, client_home, **env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        out = (expired.stdout or b"").decode(errors="replace")
        err = (expired.stderr or b"").decode(errors="replace")
        raise AssertionError(
            f"`tutum {' '.join(args)}` still running after {timeout:.0f} s\n--- stdout\n{out}\n--- stderr\n{err}"
        ) from None
    return CliResult(answer.returncode, answer.stdout.decode(errors="replace"), answer.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def client_home(tmp_path_factory) -> Path:
    """An empty HOME, so no ~/.tutum of the machine's user changes the credentials."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def tutum(python27, cli_dir, stack, client_home) -> Callable[..., CliResult]:
    """`tutum(*args, timeout=...)` runs the official CLI as `PYTHONPATH=<dir> python2.7 <dir>/bin/tutum ...`."""

    def run(*args: str, timeout: float = 60, **env: str) -> CliResult:
        return run_cli(python27, cli_dir, stack, client_home, args, timeout=timeout, **env)

    return run


@pytest.fixture
def background(stack, python27, client_home, tmp_path):
    """`background(command_args, pythonpath, **env)` starts a Python 2.7 client; every one is stopped afterwards."""
    started: list[Background] = []

    def start(args: list[str], *, pythonpath: Path, name: str, **env: str) -> Background:
        process = Background(
            [str(python27), *args],
            client_env(stack, pythonpath, client_home, **env),
            tmp_path,
            f"{name}-{len(started)}",
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class RestApi:
    """The server's REST API over HTTP with the banner's credentials: what the test checks behind the clients."""

    def __init__(self, stack: RunStack) -> None:
        self.stack = stack
        self.http = httpx.Client(
            base_url=stack.url, headers={"Authorization": stack.auth_header, "Accept": "application/json"}, timeout=15
        )

    def get(self, path: str, **params) -> dict:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def cluster(self, cluster_uuid: str) -> dict:
        return self.get(f"/api/v1/nodecluster/{cluster_uuid}/")

    def nodes(self, cluster_uuid: str) -> list[dict]:
        return self.get("/api/v1/node/", node_cluster=f"/api/v1/nodecluster/{cluster_uuid}/", limit=100)["objects"]

    def live_nodes(self, cluster_uuid: str) -> list[dict]:
        return [node for node in self.nodes(cluster_uuid) if node["state"] != "Terminated"]

    def actions(self, cluster_uuid: str) -> list[dict]:
        return self.get("/api/v1/action/", object=f"/api/v1/nodecluster/{cluster_uuid}/", limit=100)["objects"]

    def create_cluster(self, name: str, *, target_num_nodes: int = 1, deploy: bool = True) -> tuple[dict, str]:
        """Create (and deploy) a cluster as curl would; returns it and the action URI of the last call."""
        response = self.http.post(
            "/api/v1/nodecluster/",
            json={
                "name": name,
                "region": f"/api/v1/region/{PROVIDER}/{REGION}/",
                "node_type": f"/api/v1/nodetype/{PROVIDER}/{NODE_TYPE}/",
                "target_num_nodes": target_num_nodes,
            },
        )
        assert response.status_code == 201, response.text
        cluster, action_uri = response.json(), response.headers["X-Tutum-Action-URI"]
        if deploy:
            response = self.http.post(f"/api/v1/nodecluster/{cluster['uuid']}/deploy/")
            assert response.status_code == 202, response.text
            cluster, action_uri = response.json(), response.headers["X-Tutum-Action-URI"]
        return cluster, action_uri

    def patch_cluster(self, cluster_uuid: str, **fields) -> dict:
        response = self.http.patch(f"/api/v1/nodecluster/{cluster_uuid}/", json=fields)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def wait_for_cluster(self, cluster_uuid: str, state: str, *, timeout: float = CONVERGE_SECONDS) -> dict:
        """Poll until the cluster is in `state` with no node in transit; fail with the runstack log otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            cluster = self.cluster(cluster_uuid)
            nodes = self.live_nodes(cluster_uuid)
            settled = all(node["state"] in ("Deployed", "Unreachable") for node in nodes)
            if cluster["state"] == state and settled:
                return cluster
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cluster {cluster_uuid} is {cluster['state']!r} with nodes "
                    f"{[node['state'] for node in nodes]} after {timeout:.0f} s, not {state!r}\n{stack_log(self.stack)}"
                )
            time.sleep(0.25)

    def wait_until(self, predicate: Callable[[], object], *, what: str, timeout: float = CONVERGE_SECONDS):
        """Poll `predicate` until it returns something truthy, which is returned; fail naming `what` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{stack_log(self.stack)}")
            time.sleep(0.25)


def stack_log(stack: RunStack, lines: int = 80) -> str:
    """The end of runstack's console without the test's own polling (httpx's lines of the access log)."""
    kept = [line for line in stack.output().splitlines() if '"python-httpx/' not in line]
    return f"--- runstack.log without the test's HTTP polling (last {lines} lines)\n" + "\n".join(kept[-lines:])


@pytest.fixture(scope="module")
def api(stack) -> Iterator[RestApi]:
    rest = RestApi(stack)
    yield rest
    rest.http.close()


def unique_name(prefix: str) -> str:
    """A cluster name no other test uses; never a hex string, so the CLI cannot take it for a uuid prefix."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}-x"


def short(uuid_text: str) -> str:
    """The 8-character short uuid the CLI prints and accepts."""
    return uuid_text[:8]


def table_rows(output: str) -> list[list[str]]:
    """The rows of the CLI's plain tables, split on its column gaps (two spaces or more)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:] if line.strip()]


def printed_events(output: str) -> list[dict]:
    """`tutum event` prints each event as Python 2's repr of a dict (`{u'type': u'node', ...}`), one a line."""
    events = []
    for line in output.splitlines():
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(line.strip())
            if isinstance(value, dict):
                events.append(value)
    return events


def json_lines(output: str) -> list[dict]:
    """The JSON objects of an output, one a line; other lines (warnings) are ignored."""
    lines = []
    for line in output.splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                lines.append(value)
    return lines
