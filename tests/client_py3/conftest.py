"""The Python 3 client (`client/`) and its `tutum` command against a live `make run` stack (`manage.py runstack`).

The package is installed as a user would (`pip install ./client`, here into a temporary `--target` directory with
this venv's httpx, websockets and rich), and the command runs as `PYTHONPATH=<dir> python <dir>/bin/tutum ...`,
the way tests/clients runs the official CLI, with only what the banner tells a user to export. In-process tests
import the checkout's `client/tutum` and point its module settings at the stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.clients.conftest import (
    Background,
    CliResult,
    RestApi,
    _accepts_connections,
    client_env,
    client_home,  # noqa: F401 (a fixture, used by the fixtures below)
    run_cli,
)
from tests.support.engine import ROOT
from tests.support.stack import RunStack

CLIENT_DIR = ROOT / "client"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

#: The engine's pace for these tests, as tests/clients has it: instances boot in 1 s, polled every 0.5 s.
STACK_ENV = {"SIMULATED_BOOT_SECONDS": "1", "ENGINE_POLL_INTERVAL": "0.5"}


@pytest.fixture(scope="session")
def installed_client(tmp_path_factory) -> Path:
    """`pip install ./client` into a directory of its own: the `tutum` package and the `bin/tutum` script.

    Built from a copy, so the checkout gets no build/ or egg-info; no index is asked (the dependencies are this
    venv's), so it runs offline.
    """
    work = tmp_path_factory.mktemp("client-install")
    source = work / "src"
    shutil.copytree(CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert answer.returncode == 0, f"pip install ./client failed\n{answer.stdout}\n{answer.stderr}"
    return target


def start_stack(var_dir: Path, **env: str) -> RunStack:
    """`make run` on free ports; waits until the stream server accepts connections too."""
    stack = RunStack(var_dir=var_dir, env={**STACK_ENV, **env})
    stack.start()
    try:
        assert stack.stream_host, f"runstack's banner printed no TUTUM_STREAM_HOST\n{stack.output()[:1500]}"
        address = urlsplit(stack.stream_host)
        deadline = time.monotonic() + 30
        while not _accepts_connections(address.hostname, address.port or 80):
            assert time.monotonic() < deadline, f"{stack.stream_host} never accepted a connection\n{stack.logs()}"
            time.sleep(0.2)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunStack]:
    """One live stack per test module: web server, stream server, a real Celery worker and beat."""
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def api(stack) -> Iterator[RestApi]:
    """The server over plain HTTP, to check what is behind the client."""
    rest = RestApi(stack)
    yield rest
    rest.http.close()


@pytest.fixture(scope="module")
def cli_dir(installed_client) -> Path:
    """Where the installed command lives: `<dir>/bin/tutum`, importing `<dir>/tutum` (as tests/clients' CLI_DIR)."""
    return installed_client


@pytest.fixture(scope="module")
def tutum(cli_dir, stack, client_home) -> Callable[..., CliResult]:  # noqa: F811 (client_home is a fixture)
    """`tutum(*args, timeout=..., **env)` runs the new CLI as a user would after pasting the banner's exports."""

    def run(*args: str, timeout: float = 60, **env: str) -> CliResult:
        return run_cli(sys.executable, cli_dir, stack, client_home, args, timeout=timeout, **env)

    return run


@pytest.fixture
def background(stack, client_home, tmp_path):  # noqa: F811 (client_home is a fixture)
    """`background(args, pythonpath=..., name=..., **env)` runs `python <args>` on its own; stopped afterwards."""
    started: list[Background] = []

    def start(args: list[str], *, pythonpath: Path, name: str, **env: str) -> Background:
        process = Background(
            [sys.executable, *args],
            client_env(stack, pythonpath, client_home, **env),
            tmp_path,
            f"{name}-{len(started)}",
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def sdk(stack) -> Iterator:
    """The checkout's `tutum` module, imported in this process and pointed at the stack through its settings."""
    import tutum as sdk_module

    saved = {
        name: getattr(sdk_module, name)
        for name in ("user", "apikey", "tutum_auth", "basic_auth", "apikey_auth", "base_url", "stream_url")
    }
    sdk_module.user, sdk_module.apikey = stack.user, stack.apikey
    sdk_module.tutum_auth = sdk_module.basic_auth = sdk_module.apikey_auth = None
    sdk_module.base_url = f"{stack.url}/api/v1/"
    sdk_module.stream_url = f"{stack.stream_host}/v1/"
    try:
        yield sdk_module
    finally:
        for name, value in saved.items():
            setattr(sdk_module, name, value)
        sdk_module.api.http.transport.close()


def pytest_collection_modifyitems(items) -> None:
    """The client's tests talk to `make run`'s own stack (or to no server at all): the PostgreSQL pass of
    `make test` would run them again for nothing, so they carry the `stack` marker it leaves out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.stack)
