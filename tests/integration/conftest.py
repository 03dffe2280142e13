"""Integration fixtures: PostgreSQL, a Redis broker, a moto server and real Celery worker processes.

These tests run in `make test`'s PostgreSQL pass. On a machine without the services they are skipped, except
in CI (CI=true), where a missing service is a failure: the integration tests must run there.
"""

import os

import boto3
import pytest
import redis
from django.db import connection

from tests.support.engine import Engine
from tests.support.moto_server import DUMMY_AWS_ENVIRONMENT, MotoServer
from tutum_api.celery import app as celery_app

pytestmark = pytest.mark.integration


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"integration services missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "")
    if not url:
        _unavailable("TEST_REDIS_URL is not set (make test-postgres sets it)")
    if not str(celery_app.conf.broker_url).startswith("redis://"):
        _unavailable("CELERY_BROKER_URL must point at the test Redis so the test process and workers share it")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        _unavailable(f"Redis at {url} does not answer: {error}")
    return url


@pytest.fixture
def postgres(transactional_db):
    if connection.vendor != "postgresql":
        _unavailable("integration tests need PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.fixture(scope="session")
def moto():
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in DUMMY_AWS_ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        with MotoServer() as server:
            yield server


@pytest.fixture(scope="session")
def moto_ami(moto) -> str:
    client = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto.url)
    images = client.describe_images(Owners=["amazon"])["Images"]
    return next(image["ImageId"] for image in images if image.get("RootDeviceName"))


@pytest.fixture
def ec2(moto):
    moto.reset()
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto.url)


@pytest.fixture
def start_engine(postgres, broker_url, catalog, tmp_path, settings):
    """A factory: `start_engine(env={...}, concurrency=16)` starts workers and beat; all stop after the test."""
    redis.Redis.from_url(broker_url).flushdb()
    engines = []

    def start(
        *, env: dict[str, str] | None = None, concurrency: int = 16, beat: bool = True, broker: str | None = None
    ) -> Engine:
        engine = Engine(broker_url=broker or broker_url, var_dir=tmp_path, env=env or {}, concurrency=concurrency)
        engines.append(engine)
        engine.start_worker()
        if beat:
            engine.start_beat()
        return engine

    yield start
    for engine in engines:
        engine.stop()
    redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture
def aws_engine(start_engine, ec2, moto, moto_ami, settings):
    """Workers driving the real AWS driver against the moto server (the test process is pointed there too)."""
    settings.SIMULATE_PROVIDERS = False
    settings.AWS_ENDPOINT_URL = moto.url
    settings.AWS_DEFAULT_AMI = moto_ami
    # The operator's moto account is shared: these users link none (tests/accounts link their own).
    settings.SHARED_PROVIDER_ACCOUNTS = ["aws"]

    def start(**kwargs):
        env = {
            "SIMULATE_PROVIDERS": "0",
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_DEFAULT_AMI": moto_ami,
            "SHARED_PROVIDER_ACCOUNTS": "aws",
        }
        env.update(kwargs.pop("env", {}))
        return start_engine(env=env, **kwargs)

    return start
