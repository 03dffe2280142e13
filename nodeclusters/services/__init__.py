"""Every write to the domain goes through these services: row lock, state check, action record, engine hand-off."""

from .actions import RequestContext, action_cancel, action_log, action_retry, engine_schedule_reconcile
from .api_keys import api_key_authenticate, api_key_create, api_key_revoke
from .dry_run import dry_run
from .node_clusters import (
    node_cluster_create,
    node_cluster_deploy,
    node_cluster_docker_upgrade,
    node_cluster_terminate,
    node_cluster_update,
)
from .nodes import node_docker_upgrade, node_health_check, node_terminate, node_update

__all__ = [
    "RequestContext",
    "action_cancel",
    "action_log",
    "action_retry",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "dry_run",
    "engine_schedule_reconcile",
    "node_cluster_create",
    "node_cluster_deploy",
    "node_cluster_docker_upgrade",
    "node_cluster_terminate",
    "node_cluster_update",
    "node_docker_upgrade",
    "node_health_check",
    "node_terminate",
    "node_update",
]
