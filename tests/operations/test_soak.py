"""The embedded default stays up under load: `make run`'s processes with a 2 s sweep and health check while
clusters scale up and down and a client reads (the soak of bench/soak.py at CI size, about two minutes)."""

from __future__ import annotations

import pytest

from bench.soak import SOAK_ENV, soak
from tests.support.stack import RunStack

# `make run`'s own stack (SQLite, embedded broker): the PostgreSQL pass of `make test` leaves it out.
pytestmark = pytest.mark.stack

#: Seconds of load in CI; `python -m bench.soak --minutes 10` runs the long one.
CI_SOAK_SECONDS = 90


def test_the_embedded_default_survives_a_soak_converged_and_without_leaks(tmp_path):
    stack = RunStack(var_dir=tmp_path / "stack", env=SOAK_ENV).start()
    try:
        result = soak(
            url=stack.url,
            auth_header=stack.auth_header,
            var_dir=stack.var_dir,
            console=stack.output,
            seconds=CI_SOAK_SECONDS,
            clusters=3,
            max_nodes=4,
            log=lambda line: None,
        )
    finally:
        exit_code = stack.stop()
    assert result.problems == [], f"{result.summary()}\n" + "\n".join(result.problems) + f"\n{stack.logs()}"
    assert result.converged_after is not None
    assert result.scales >= 20 and result.reads >= 100, result.summary()
    assert ", 0 moved aside as undecodable" in result.broker, result.broker
    assert exit_code == 0
