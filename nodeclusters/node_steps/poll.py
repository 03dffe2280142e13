"""Watching instances boot: one poll per provider and region, whatever the number of clusters booting there (one
listing per cloud account with nodes booting there).

Every `ENGINE_POLL_INTERVAL` while any node of the region is booting, the poll lists the provider's instances in
the region once, lands every booting node of every cluster there whose instance runs (in one statement), fails
those whose instance vanished or outlived the deploy timeout, and reconciles, in one batch, each cluster whose
last node in transit has landed. Polling per cluster cost a task and a listing per cluster per interval, and
each listing returned the whole region: 100 clusters booting in one region listed it 100 times an interval.
"""

import datetime
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from providers.base import InstanceState, PermanentProviderError, TransientProviderError

from ..choices import NodeState, ReasonCode
from ..models import Node, Region
from ..services.accounts import account_groups
from ..services.actions import engine_schedule
from .common import Outcome, Step, _clusters_changed
from .landing import TIMEOUT_TEXT, _nodes_deployed, _nodes_failed, _timed_out

logger = logging.getLogger(__name__)

#: What deciding on and landing a booting node reads, and no more: the poll reads every booting node of a region
#: every interval.
_BOOTING_FIELDS = (
    "uuid",
    "owner",
    "node_cluster",
    "node_type",
    "region",
    "instance_id",
    "created_at",
    "engine_touched_at",
    "node_cluster__disk",
    "node_type__cpu",
    "node_type__memory",
    "node_type__disk",
)


#: Polls this process scheduled: region id -> when the poll runs (its countdown's end), by the monotonic clock.
_polls_due: dict = {}
#: A region's poll is taken as still to come until this long before it is due (it may start a little early).
_POLL_MARGIN = 0.25
#: The shortest wait before a region's next poll, however long the last one took.
_MIN_COUNTDOWN = 0.1


def region_polls_forget() -> None:
    """Take no poll as still to come until one is scheduled again (between tests: ids come back after a rollback)."""
    _polls_due.clear()


def schedule_region_poll(region_id, *, countdown: float | None = None) -> None:
    """Look at the region's booting instances in `countdown` seconds (ENGINE_POLL_INTERVAL by default), unless a
    poll of the region is scheduled.

    A poll this process scheduled itself is known to be still to come without asking the database: it will see
    what was committed before it starts, so the hundreds of steps that hand over a node meanwhile skip the UPDATE.
    """
    if region_id is None:
        return
    if time.monotonic() < _polls_due.get(region_id, 0.0) - _POLL_MARGIN:
        return
    now = timezone.now()
    countdown = settings.ENGINE_POLL_INTERVAL if countdown is None else max(countdown, _MIN_COUNTDOWN)
    claimed = (
        Region.objects.filter(pk=region_id)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .update(next_poll_at=now + datetime.timedelta(seconds=countdown))
    )
    if claimed:
        due = time.monotonic() + countdown
        # Known only once the claim and the task's hand-off commit (a rolled-back claim scheduled nothing).
        transaction.on_commit(lambda: _polls_due.__setitem__(region_id, due))
        engine_schedule("nodeclusters.poll_region", region_id, countdown=countdown)


def region_poll_step(region_id) -> Step:
    """One provider listing for the booting instances of every cluster in the region: each deployed, failed, or
    still booting (and then polled again), with the same conditional writes a deploy step's landing makes."""
    started = time.monotonic()
    # This poll is running: the next one may be scheduled (whatever the clock skew between ETA and now).
    Region.objects.filter(pk=region_id).update(next_poll_at=None)
    region = Region.objects.select_related("provider").filter(pk=region_id).first()
    if region is None:
        return Step(Outcome.DONE)
    booting = list(
        Node.objects.filter(region_id=region_id, state=NodeState.DEPLOYING)
        .exclude(instance_id="")
        .select_related("node_cluster", "node_type")
        .only(*_BOOTING_FIELDS)
    )
    if not booting:
        return Step(Outcome.DONE)
    # One listing per account: the nodes of owners sharing the operator's account together, each linked account
    # on its own (its instances are only visible with its credentials).
    still_booting = []
    for group in account_groups(provider_name=region.provider.name, owner_ids={node.owner_id for node in booting}):
        nodes = [node for node in booting if node.owner_id in group.owner_ids]
        if group.driver is None:
            logger.warning("poll of %s (%s) failed: %s; the sweep will retry", region, group.label, group.error)
            continue
        try:
            still_booting += _poll_nodes(group.driver, region, nodes)
        except TransientProviderError as error:
            logger.warning("poll of %s (%s): transient provider error: %s", region, group.label, error)
            still_booting += [node.pk for node in nodes]
        except PermanentProviderError as error:
            logger.warning("poll of %s (%s) failed: %s; the sweep will retry", region, group.label, error)
    if still_booting:
        # Touched: a node the poll is watching is not stuck. Once per half the time it takes to count as stuck is
        # enough, and spares rewriting every booting row at every poll.
        now = timezone.now()
        stale = now - datetime.timedelta(seconds=settings.ENGINE_STUCK_AFTER / 2)
        Node.objects.filter(
            Q(engine_touched_at__isnull=True) | Q(engine_touched_at__lt=stale),
            pk__in=still_booting,
            state=NodeState.DEPLOYING,
        ).update(engine_touched_at=now)
        # Every ENGINE_POLL_INTERVAL from this poll's start, not from its end: under a fleet's load a poll takes a
        # good part of a second, and a booted instance would wait for that as well.
        schedule_region_poll(region_id, countdown=settings.ENGINE_POLL_INTERVAL - (time.monotonic() - started))
        return Step(Outcome.WAITING)
    return Step(Outcome.DONE)


def _poll_nodes(driver, region: Region, booting: list[Node]) -> list:
    """One provider listing for these booting nodes (all in one account): land, fail or keep watching each; the pks
    of those still booting."""
    listed = {instance.instance_id: instance for instance in driver.list_nodes(region=region.name)}
    missing = [node.instance_id for node in booting if node.instance_id not in listed]
    if missing:  # listings can lag behind a create: ask for these directly (in one call where the provider can)
        listed.update(driver.get_nodes(instance_ids=missing, region=region.name))
    still_booting, running, failures = [], [], []
    for node in booting:
        instance = listed.get(node.instance_id)
        if instance is None or instance.is_gone:
            reason = f"instance {node.instance_id} disappeared while deploying"
            failures.append((node, reason, ReasonCode.INSTANCE_GONE))
        elif instance.state == InstanceState.RUNNING:
            running.append((node, instance))
        elif _timed_out(node):
            reason = f"instance {node.instance_id} still {instance.state} after {TIMEOUT_TEXT}"
            failures.append((node, reason, ReasonCode.BOOT_TIMEOUT))
        else:
            still_booting.append(node.pk)
    failed, busy = _nodes_failed(failures)
    landed, skipped = _nodes_deployed(running, reconcile=False)
    _clusters_changed(landed, failed=failed)
    return still_booting + busy + skipped
