"""A real moto server in a subprocess, standing in for the AWS API in tests that must not touch the internet.

Use `MotoServer` directly (integration tests, benchmarks) or the session-scoped `moto_server` fixture, which
also points boto3 at dummy credentials for the whole session. A conftest exposes the fixture by importing it:
`from tests.support.moto_server import moto_server as moto_server`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# Credentials and region boto3 picks up from the environment. Pointing the config files at nothing keeps a
# developer's real ~/.aws profile out of the tests.
DUMMY_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


class MotoServer:
    """One moto server process on 127.0.0.1 and a free port.

    `start()` returns once the server answers HTTP (or raises after `start_timeout` seconds with the server's
    log); `reset()` wipes every backend between tests; `stop()` ends the process.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 30.0) -> None:
        """`port=None` picks a free port at start."""
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. "http://127.0.0.1:50123"; pass it as boto3's `endpoint_url`."""
        if self.port is None:
            raise RuntimeError("moto server has not been started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        if self.process is not None:
            return self.url
        if self.port is None:
            self.port = _free_port(self.host)
        # The server's output goes to a file, not a pipe: nobody reads a pipe while tests run, and a full pipe
        # would block the server.
        self._log_file = tempfile.NamedTemporaryFile(prefix="moto-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "--host", self.host, "--port", str(self.port)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **DUMMY_AWS_ENVIRONMENT},
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return self.url
            time.sleep(0.1)
        log = self.log()
        self.stop()
        raise RuntimeError(f"moto server did not answer within {self.start_timeout}s; its output:\n{log}")

    def reset(self) -> None:
        """Wipe every moto backend, so one test's instances never show up in the next."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        """Stop the server process and remove its log."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            Path(self._log_file.name).unlink(missing_ok=True)
            self._log_file = None

    def log(self) -> str:
        """What the server has written so far, for failure messages."""
        if self._log_file is None:
            return ""
        self._log_file.flush()
        return Path(self._log_file.name).read_text(errors="replace")[-5000:]

    def _answers(self) -> bool:
        """Whether the server answers its own API yet."""
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def __enter__(self) -> MotoServer:
        """Start on entering a `with` block."""
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop on leaving it."""
        self.stop()


def _free_port(host: str) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto server shared by the whole test session, with dummy AWS credentials in the environment.

    Tests that need a clean cloud call `moto_server.reset()`.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in DUMMY_AWS_ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        with MotoServer() as server:
            yield server


def running_instances(ec2) -> dict[str, str]:
    """instance id -> node uuid tag of every pending or running instance carrying our owner tag."""
    from providers.base import NODE_UUID_TAG, OWNER_TAG

    found = {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag-key", "Values": [OWNER_TAG]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                found[instance["InstanceId"]] = tags.get(NODE_UUID_TAG)
    return found
