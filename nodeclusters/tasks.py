"""Celery tasks: thin wrappers that take ids, re-fetch rows and call the reconciler or a node step.

Every task is idempotent and safe to receive twice (at-least-once delivery with `acks_late`). Polls and retries
are scheduled with Celery countdowns, never by sleeping in a worker thread.
"""

import logging
import time
from collections import Counter, defaultdict

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import InterfaceError, OperationalError

from providers.base import ProviderError
from tutum_api.logging import log_context
from tutum_api.metrics import RECONCILE_DURATION, RECONCILE_RUNS

from . import node_steps, reconciler, repair
from .models import Node, NodeCluster
from .services.accounts import NoCredentials, account_groups, drivers_remembered
from .services.actions import engine_schedule_many

logger = logging.getLogger(__name__)

# A database that restarts under a worker is retried with backoff instead of losing the message.
_DB_ERRORS = (OperationalError, InterfaceError)
_COMMON = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": _DB_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}
_NODE_STEP = {**_COMMON, "bind": True, "soft_time_limit": 60, "time_limit": 90}


@shared_task(name="nodeclusters.reconcile_node_cluster", soft_time_limit=60, time_limit=90, **_COMMON)
def reconcile_node_cluster(node_cluster_uuid: str) -> str | None:
    """Converge one cluster on its desired state (see `reconciler.reconcile_node_cluster`)."""
    # The reconcile adds the cluster's current action to the log context once it has the cluster's row.
    with log_context(node_cluster_uuid=node_cluster_uuid):
        started = time.perf_counter()
        result = reconciler.reconcile_node_cluster(node_cluster_uuid)
        RECONCILE_DURATION.observe(time.perf_counter() - started)
        RECONCILE_RUNS.labels(result.state if result else "skipped").inc()
        if result and (result.created or result.terminating):
            logger.info(
                "reconciled: %s, %d node(s) created, %d terminating",
                result.state,
                len(result.created),
                len(result.terminating),
            )
    return result.state if result else None


def _run_step(task, step, node_uuid: str, transient_attempt: int, *extra_args) -> str:
    # The step adds the node's cluster and action to the log context once it has loaded the node.
    with log_context(node_uuid=node_uuid):
        return _step_and_schedule(task, step, node_uuid, transient_attempt, *extra_args)


def _step_and_schedule(task, step, node_uuid: str, transient_attempt: int, *extra_args) -> str:
    outcome = step(node_uuid, *extra_args)
    if outcome.outcome is node_steps.Outcome.TRANSIENT:
        if transient_attempt >= settings.ENGINE_MAX_TRANSIENT_RETRIES:
            node_steps.node_give_up(
                node_uuid, f"{outcome.error} (after {transient_attempt + 1} attempts)", outcome.reason_code
            )
            return "gave up"
        countdown = get_exponential_backoff_interval(
            factor=1, retries=transient_attempt, maximum=settings.ENGINE_RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise task.retry(
            args=(node_uuid, *extra_args),
            kwargs={"transient_attempt": transient_attempt + 1},
            countdown=max(countdown, 0.5),
            max_retries=None,
        )
    return outcome.outcome.value


@shared_task(name="nodeclusters.deploy_node", **_NODE_STEP)
def deploy_node(self, node_uuid: str, transient_attempt: int = 0) -> str:
    """Create one node's instance and wait until it runs."""
    return _run_step(self, node_steps.node_deploy_step, node_uuid, transient_attempt)


@shared_task(name="nodeclusters.deploy_nodes", **_NODE_STEP)
def deploy_nodes(self, *node_uuids: str) -> dict:
    """The deploy steps of several nodes of one cluster (a reconcile batches them when many nodes wait across the
    fleet), as `node_steps.nodes_deploy_step` runs them together; one the provider answered with a transient error
    is retried on its own, with backoff, as a `deploy_node` task."""
    outcomes = Counter()
    with drivers_remembered(), log_context():  # one cluster's nodes: one owner, one account to look up
        steps = node_steps.nodes_deploy_step(node_uuids)
    for node_uuid, step in steps.items():
        if step.outcome is node_steps.Outcome.TRANSIENT:
            countdown = get_exponential_backoff_interval(
                factor=1, retries=0, maximum=settings.ENGINE_RETRY_BACKOFF_MAX, full_jitter=True
            )
            deploy_node.apply_async(args=(node_uuid,), kwargs={"transient_attempt": 1}, countdown=max(countdown, 0.5))
        outcomes[step.outcome.value] += 1
    return dict(outcomes)


@shared_task(name="nodeclusters.terminate_node", **_NODE_STEP)
def terminate_node(self, node_uuid: str, transient_attempt: int = 0) -> str:
    """Destroy one node's instance (and any twin) and mark it terminated."""
    return _run_step(self, node_steps.node_terminate_step, node_uuid, transient_attempt)


@shared_task(name="nodeclusters.upgrade_node_docker", **_NODE_STEP)
def upgrade_node_docker(self, node_uuid: str, transient_attempt: int = 0) -> str:
    """Upgrade Docker on one node."""
    return _run_step(self, node_steps.node_upgrade_step, node_uuid, transient_attempt)


@shared_task(name="nodeclusters.check_node_health", **_NODE_STEP)
def check_node_health(self, node_uuid: str, action_uuid: str | None = None, transient_attempt: int = 0) -> str:
    """Ask the provider whether a node is up; it becomes `Deployed` or `Unreachable`."""
    return _run_step(self, node_steps.node_health_step, node_uuid, transient_attempt, action_uuid)


@shared_task(name="nodeclusters.resolve_node_strays", **_NODE_STEP)
def resolve_node_strays(self, node_uuid: str, transient_attempt: int = 0) -> str:
    """Adopt or destroy the instances a step made for a node after it had lost the node's lease."""
    with log_context(node_uuid=node_uuid):
        outcome = node_steps.node_strays_step(node_uuid).outcome
    if outcome in (node_steps.Outcome.BUSY, node_steps.Outcome.TRANSIENT):
        if transient_attempt >= settings.ENGINE_MAX_TRANSIENT_RETRIES:
            return "left for the sweep"
        countdown = get_exponential_backoff_interval(
            factor=1, retries=transient_attempt, maximum=settings.ENGINE_LEASE_SECONDS, full_jitter=True
        )
        raise self.retry(
            args=(node_uuid,),
            kwargs={"transient_attempt": transient_attempt + 1},
            countdown=max(countdown, 0.5),
            max_retries=None,
        )
    return outcome.value


@shared_task(name="nodeclusters.poll_region", soft_time_limit=60, time_limit=90, **_COMMON)
def poll_region(region_id: str) -> str:
    """Check the booting instances of every cluster in one provider region with a single provider listing."""
    with log_context():
        return node_steps.region_poll_step(region_id).outcome.value


@shared_task(name="nodeclusters.poll_node_cluster", soft_time_limit=60, time_limit=90, **_COMMON)
def poll_node_cluster(node_cluster_uuid: str) -> str:
    """What a per-cluster poll queued before an upgrade becomes: its region's poll (scheduled if none is)."""
    region_id = NodeCluster.objects.filter(pk=node_cluster_uuid).values_list("region_id", flat=True).first()
    node_steps.schedule_region_poll(region_id)
    return node_steps.Outcome.DONE.value


@shared_task(name="nodeclusters.engine_sweep", soft_time_limit=60, time_limit=90, **_COMMON)
def engine_sweep() -> dict:
    """The safety net: re-enqueue reconciles for unconverged clusters, health checks for the nodes due one, and the
    settling of instances steps made after losing their lease.

    Queue messages are hints; this periodic sweep is what guarantees that every accepted request is carried out
    after a lost message, a killed worker or a broker outage. Health checks are bounded per sweep
    (ENGINE_HEALTH_CHECKS_PER_SWEEP) and go to the nodes probed longest ago, so unreachable nodes (which back off)
    never starve the healthy ones.
    """
    cluster_uuids = reconciler.unconverged_cluster_uuids()
    for cluster_uuid in cluster_uuids:
        reconcile_node_cluster.delay(str(cluster_uuid))
    probes = reconciler.nodes_to_probe(limit=settings.ENGINE_HEALTH_CHECKS_PER_SWEEP)
    for node_uuid in probes:
        check_node_health.delay(str(node_uuid))
    strays = reconciler.nodes_with_strays()
    for node_uuid in strays:
        resolve_node_strays.delay(str(node_uuid))
    repairs = repair.clusters_due_repair()
    engine_schedule_many([("nodeclusters.repair_node_cluster", (cluster_uuid,)) for cluster_uuid in repairs])
    queued = {
        "reconciles": len(cluster_uuids),
        "health_checks": len(probes),
        "strays": len(strays),
        "repairs": len(repairs),
    }
    if any(queued.values()):  # Celery's own lines about this task are left out (settings.LOG_ROUTINE_TASKS)
        logger.info(
            "sweep: queued %d reconcile(s), %d health check(s), %d stray check(s), %d repair(s)", *queued.values()
        )
    return queued


@shared_task(name="nodeclusters.repair_node_cluster", soft_time_limit=60, time_limit=90, **_COMMON)
def repair_node_cluster(node_cluster_uuid: str) -> dict | None:
    """Replace the cluster's nodes whose instance is gone or that stay unreachable (see `repair`)."""
    with log_context(node_cluster_uuid=node_cluster_uuid):
        result = repair.repair_node_cluster(node_cluster_uuid)
    if result and result.replaced:
        logger.info("self-repair: %d node(s) replaced", len(result.replaced))
    return result.summary() if result else None


@shared_task(name="nodeclusters.reap_leaked_instances", soft_time_limit=120, time_limit=180, **_COMMON)
def reap_leaked_instances() -> int:
    """Terminate provider instances tagged as ours that no live node owns (leaks, twins)."""
    reaped = 0
    owners_by_place = defaultdict(set)
    for provider_name, region_name, owner_id in Node.objects.values_list(
        "region__provider__name", "region__name", "owner_id"
    ).distinct():
        owners_by_place[provider_name, region_name].add(owner_id)
    for (provider_name, region_name), owner_ids in owners_by_place.items():
        # Each account its own listing: a linked account's instances are visible only with its credentials.
        for group in account_groups(provider_name=provider_name, owner_ids=owner_ids):
            if group.driver is None:
                if not isinstance(group.error, NoCredentials):
                    logger.warning("leak sweep of %s/%s (%s): %s", provider_name, region_name, group.label, group.error)
                continue
            try:
                for instance, why in reconciler.leaked_instances(group.driver, region=region_name):
                    logger.warning(
                        "reaping leaked instance %s in %s/%s (%s): %s",
                        instance.instance_id,
                        provider_name,
                        region_name,
                        group.label,
                        why,
                    )
                    group.driver.destroy_node(instance_id=instance.instance_id, region=region_name)
                    reaped += 1
            except ProviderError as error:
                logger.warning("leak sweep of %s/%s (%s) failed: %s", provider_name, region_name, group.label, error)
    return reaped


@shared_task(name="nodeclusters.prune_events", soft_time_limit=60, time_limit=90, **_COMMON)
def prune_events() -> int:
    """Delete Stream API events older than the retention window (STREAM_RETENTION_SECONDS)."""
    from .services.events import events_prune

    deleted = events_prune()
    if deleted:
        logger.info("pruned %d event(s) past the retention window", deleted)
    return deleted


@shared_task(name="nodeclusters.update_state_gauges", soft_time_limit=30, time_limit=60, **_COMMON)
def update_state_gauges() -> dict:
    """Count node clusters and nodes by state for /metrics (beat runs it every METRICS_STATE_INTERVAL seconds)."""
    from tutum_api.metrics import state_gauges_update

    return state_gauges_update()


@shared_task(name="nodeclusters.webhooks_dispatch", soft_time_limit=150, time_limit=180, **_COMMON)
def webhooks_dispatch() -> dict:
    """Turn new events into webhook deliveries and send those due (at most WEBHOOK_DELIVERIES_PER_RUN; a full run
    queues another run, so a backlog drains without waiting for beat)."""
    from .services.webhook_delivery import webhook_deliveries_run
    from .services.webhooks import webhooks_fan_out

    created = webhooks_fan_out()
    counts = webhook_deliveries_run(limit=settings.WEBHOOK_DELIVERIES_PER_RUN)
    if counts["attempted"] >= settings.WEBHOOK_DELIVERIES_PER_RUN:
        webhooks_dispatch.delay()
    if created or counts["attempted"]:  # Celery's own lines about this task are left out (LOG_ROUTINE_TASKS)
        logger.info(
            "webhooks: %d deliveries queued, %d sent: %d delivered, %d failed",
            created,
            counts["attempted"],
            counts["delivered"],
            counts["failed"],
        )
    return {"created": created, **counts}


@shared_task(name="nodeclusters.prune_webhook_deliveries", soft_time_limit=60, time_limit=90, **_COMMON)
def prune_webhook_deliveries() -> int:
    """Delete webhook deliveries finished more than WEBHOOK_RETENTION_SECONDS ago."""
    from .services.webhooks import webhook_deliveries_prune

    deleted = webhook_deliveries_prune()
    if deleted:
        logger.info("pruned %d finished webhook deliveries", deleted)
    return deleted


@shared_task(name="nodeclusters.prune_idempotency_keys", soft_time_limit=60, time_limit=90, **_COMMON)
def prune_idempotency_keys() -> int:
    """Delete idempotency keys (and the answers stored with them) older than IDEMPOTENCY_KEY_SECONDS."""
    from .services.idempotency_keys import idempotency_keys_prune

    deleted = idempotency_keys_prune()
    if deleted:
        logger.info("pruned %d expired idempotency key(s)", deleted)
    return deleted


@shared_task(name="nodeclusters.sync_catalog", soft_time_limit=600, time_limit=660, **_COMMON)
def sync_catalog(provider_names: list[str] | None = None) -> list[str]:
    """Refresh regions, zones and node types from the providers' APIs (beat: every CATALOG_SYNC_INTERVAL)."""
    from .services.catalog_sync import catalog_sync

    return [str(result) for result in catalog_sync(provider_names)]
