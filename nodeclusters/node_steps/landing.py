"""Where a booting node ends up: `Deployed` once its instance runs, or failed (`Terminating`, so its half-made
instance is destroyed) when it vanishes or outlives the deploy timeout; then its cluster's reconcile."""

import datetime
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from providers.base import Instance

from ..choices import NodeState
from ..models import Node
from ..services.events import event_record, events_record, node_event
from ..services.steps import steps_booted, steps_deploy_failed
from .common import _changed, _clusters_changed, node_log, nodes_log

TIMEOUT_TEXT = "the deploy timeout (ENGINE_DEPLOY_TIMEOUT)"


def _timed_out(node: Node) -> bool:
    return (timezone.now() - node.created_at).total_seconds() > settings.ENGINE_DEPLOY_TIMEOUT


def _nodes_deployed(
    running: list[tuple[Node, Instance]], *, token: str | None = None, reconcile: bool = True
) -> tuple[set, list]:
    """Mark the nodes of running instances `Deployed` in one statement and log them in one insert.

    Only nodes still `Deploying` with the instance the caller observed change (one scaled away while booting stays
    `Terminating`), and with `token` (a deploy step) only while the step holds the node's lease: their rows are
    locked first, skipping any that another task holds at that moment. Returns the clusters of the nodes that
    landed, which are reconciled here unless `reconcile` is off (`_clusters_changed`: each once its last node in
    transit has landed), and the nodes skipped, which are still booting as far as the caller knows; the next poll
    lands them. The nodes come with their node type and cluster (for the figures copied onto the row).
    """
    if not running:
        return set(), []
    instances = {node.pk: instance for node, instance in running}
    now = timezone.now()
    fence = {"lease_token": token} if token is not None else {}
    with transaction.atomic():
        locked = (
            Node.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
            .filter(pk__in=instances, state=NodeState.DEPLOYING, **fence)
            .order_by("pk")
            .values_list("pk", "instance_id")
        )
        landing = {pk for pk, instance_id in locked if instance_id == instances[pk].instance_id}
        nodes = [node for node, _ in running if node.pk in landing]
        next_probe = now + datetime.timedelta(seconds=settings.ENGINE_HEALTH_CHECK_INTERVAL)
        groups = defaultdict(list)
        for node in nodes:
            instance = instances[node.pk]
            node.state = NodeState.DEPLOYED
            node.state_changed_at = node.deployed_datetime = node.last_seen = now
            # A running instance is as good as a probe: the first health check is an interval away.
            node.last_probed_at, node.next_probe_at, node.failed_probes = now, next_probe, 0
            node.public_ip = instance.public_ip
            node.cpu, node.memory = node.node_type.cpu, node.node_type.memory
            node.disk = node.node_cluster.disk if node.node_cluster else node.node_type.disk
            node.docker_version = instance.extra.get("docker_version") or settings.NODE_DOCKER_VERSION
            node.docker_execdriver, node.docker_graphdriver = "native-0.2", "overlay"
            groups[(node.cpu, node.memory, node.disk, node.docker_version)].append(node.pk)
        # What nodes landing together share is one UPDATE per node type (and disk, Docker version); only the
        # address differs from node to node. A `bulk_update` of every field made Django build a CASE of one branch
        # per node for each of them: most of a poll's CPU when hundreds land at once.
        for (cpu, memory, disk, docker_version), pks in groups.items():
            Node.objects.filter(pk__in=pks).update(
                state=NodeState.DEPLOYED,
                state_changed_at=now,
                deployed_datetime=now,
                last_seen=now,
                last_probed_at=now,
                next_probe_at=next_probe,
                failed_probes=0,
                cpu=cpu,
                memory=memory,
                disk=disk,
                docker_version=docker_version,
                docker_execdriver="native-0.2",
                docker_graphdriver="overlay",
            )
        Node.objects.bulk_update(nodes, ["public_ip"], batch_size=500)
        events_record(node_event(node) for node in nodes)
        steps_booted(node_ids=[node.pk for node in nodes])  # one statement for all of them
        # In the same commit: under a fleet's load every commit waits for the database's log to reach the disk.
        nodes_log(
            [
                (node, f"instance {node.instance_id} running at {node.public_ip or 'no public IP'}; deployed")
                for node in nodes
            ]
        )
    clusters = {node.node_cluster_id for node in nodes if node.node_cluster_id}
    if reconcile:
        _clusters_changed(clusters)
    return clusters, [pk for pk in instances if pk not in landing]


def _node_failed(node: Node, reason: str, *, reason_code: str, token: str | None = None) -> None:
    """Mark a deploying node failed (`reason_code` from ReasonCode); it goes `Terminating` so the terminate step
    removes any half-made instance.

    Only if it still has the instance the caller observed and, with `token`, while the caller holds its lease.
    """
    fence = {"lease_token": token} if token is not None else {}
    with transaction.atomic():
        updated = Node.objects.filter(
            pk=node.pk, state=NodeState.DEPLOYING, instance_id=node.instance_id, **fence
        ).update(**_failed_fields(reason, reason_code))
        if updated:
            event_record(node_event(node, state=NodeState.TERMINATING))
            steps_deploy_failed([(node.pk, reason_code, reason)])
    if updated:
        node_log(node, f"deploy failed: {reason}; cleaning up")
        _changed(node, failed=True)


def _nodes_failed(failures: list[tuple[Node, str, str]]) -> tuple[set, list]:
    """`_node_failed` for the nodes a poll found failed (it holds no lease), in one transaction and one log insert.

    `failures` are (node, reason, reason code). Each node fails only if it is still `Deploying` with the instance the
    poll saw. Their rows are locked first, in
    one order and skipping any another task holds (as `_nodes_deployed` does), so this never waits on a reconcile
    or a step. Returns the clusters of the nodes that failed, for the caller to reconcile, and the nodes skipped.
    """
    if not failures:
        return set(), []
    with transaction.atomic():
        locked = dict(
            Node.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
            .filter(pk__in=[node.pk for node, _, _ in failures], state=NodeState.DEPLOYING)
            .order_by("pk")
            .values_list("pk", "instance_id")
        )
        failed = [failure for failure in failures if locked.get(failure[0].pk) == failure[0].instance_id]
        for node, reason, reason_code in failed:
            Node.objects.filter(pk=node.pk).update(**_failed_fields(reason, reason_code))
        events_record(node_event(node, state=NodeState.TERMINATING) for node, _, _ in failed)
        steps_deploy_failed([(node.pk, reason_code, reason) for node, reason, reason_code in failed])
        nodes_log([(node, f"deploy failed: {reason}; cleaning up") for node, reason, _ in failed])
    skipped = [node.pk for node, _, _ in failures if node.pk not in locked]
    return {node.node_cluster_id for node, _, _ in failed if node.node_cluster_id}, skipped


def _failed_fields(reason: str, reason_code: str) -> dict:
    return {
        "state": NodeState.TERMINATING,
        "state_changed_at": timezone.now(),
        "failure_reason": reason[:2000],
        "failure_reason_code": reason_code,
        "engine_touched_at": None,
    }
