"""Prometheus counters and timings for every driver call, by provider, operation and error kind (no Django)."""

import functools
import time

from prometheus_client import Counter, Histogram

from providers.errors import PermanentProviderError, TransientProviderError

PROVIDER_CALLS = Counter("tutum_provider_calls_total", "Provider driver calls", ["provider", "operation"])
PROVIDER_ERRORS = Counter("tutum_provider_errors_total", "Provider driver errors", ["provider", "operation", "kind"])
PROVIDER_LATENCY = Histogram(
    "tutum_provider_call_duration_seconds", "Provider driver call latency", ["provider", "operation"]
)

#: The driver methods that reach the provider.
OPERATIONS = (
    "create_node",
    "find_node",
    "get_node",
    "get_nodes",
    "destroy_node",
    "list_nodes",
    "check_health",
    "upgrade_docker",
    "verify_account",
    "fetch_catalog",
    "get_quota",
)


def instrument(method):
    """Wrap one driver method: count it, time it, and count its errors as transient or permanent."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        provider, operation = self.name or type(self).__name__, method.__name__
        PROVIDER_CALLS.labels(provider, operation).inc()
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        except TransientProviderError:
            PROVIDER_ERRORS.labels(provider, operation, "transient").inc()
            raise
        except PermanentProviderError:
            PROVIDER_ERRORS.labels(provider, operation, "permanent").inc()
            raise
        finally:
            PROVIDER_LATENCY.labels(provider, operation).observe(time.perf_counter() - started)

    wrapper.__instrumented__ = True
    return wrapper
