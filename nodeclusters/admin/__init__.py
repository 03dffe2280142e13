"""The operators' dashboard: clusters, nodes, actions, API keys and the catalog, with writes through the services."""

from . import accounts, catalog, clusters, webhooks  # noqa: F401 (each registers its models)
