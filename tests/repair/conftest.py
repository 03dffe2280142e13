"""Self-repair tests drive the engine in process against the simulated cloud, as tests/reconciler does, and (marked
integration) against real worker processes with the fixtures of tests/integration."""

from tests.integration.conftest import broker_url, postgres, start_engine  # noqa: F401 (fixtures)
from tests.reconciler.conftest import converge, instant_simulated_cloud, run_round  # noqa: F401 (fixtures, helpers)
