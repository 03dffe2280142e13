"""Fault tests use the integration fixtures: PostgreSQL, Redis, moto and real worker processes."""

from tests.integration.conftest import (  # noqa: F401 - fixtures
    aws_engine,
    broker_url,
    ec2,
    moto,
    moto_ami,
    postgres,
    start_engine,
)
