"""Preflight: what would stop a deploy, scale-up or create, checked synchronously before anything is accepted.

`preflight_check` is a pure read (it changes nothing and may be called for a dry run); `preflight_require` raises
`PreflightRefused` (409, `{"error": ..., "reasons": [...]}`) when it finds any reason. Each reason is a dict with a
`code` (choices.ReasonCode), a `message` a person can act on, and the figures behind it.
"""

import contextlib
import contextvars
import logging

from django.conf import settings
from rest_framework import status

from nodeclusters.choices import NodeClusterState, NodeState, ReasonCode
from nodeclusters.exceptions import ServiceError
from nodeclusters.models import Node, NodeCluster, NodeType, Region
from nodeclusters.wire import uris
from providers.base import ProviderError, Quota

from .accounts import NoCredentials, driver_for

logger = logging.getLogger(__name__)

Reason = dict


class PreflightRefused(ServiceError):
    """The request would fail (credentials, catalog, quota, operator limits): refused before anything changed."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Refused before anything was changed."
    default_code = "preflight_refused"

    def __init__(self, reasons: list[Reason]):
        self.reasons = reasons
        super().__init__("Refused before anything was changed: " + " ".join(reason["message"] for reason in reasons))


def _reason(code: str, message: str, **figures) -> Reason:
    return {"code": str(code), "message": message, **figures}


#: `preflight_check(quota=READ_QUOTA)`: ask the provider now (outside any transaction: a dry run's, after it).
READ_QUOTA = object()


def preflight_quota(*, owner, region: Region) -> Quota | None:
    """The owner's account limit and use in the region, read from the provider: what a service reads before its
    transaction, so no provider call holds a row lock. None when there is no account to ask or it will not tell (the
    check is then skipped: the engine rechecks at the provider)."""
    try:
        driver = driver_for(owner=owner, provider_name=region.provider.name)
    except ProviderError:
        return None  # no account: preflight_check says so
    try:
        return driver.get_quota(region=region.name)
    except ProviderError as error:
        logger.warning("preflight: quota of %s unreadable, check skipped: %s", region, error)
        return None


def preflight_check(
    *, owner, node_type: NodeType, region: Region, add_nodes: int, new_clusters: int = 0, quota=READ_QUOTA
) -> list[Reason]:
    """Every reason `add_nodes` new nodes of `node_type` in `region` (and `new_clusters` new clusters) would fail
    for the owner; empty when nothing stands in the way. Reads only: the database and the provider's quota, or the
    `quota` a caller read from it before its transaction (`preflight_quota`)."""
    provider = region.provider
    reasons = []
    driver = None
    if add_nodes > 0:
        try:
            driver = driver_for(owner=owner, provider_name=provider.name)
        except NoCredentials:
            reasons.append(
                _reason(
                    ReasonCode.NO_CREDENTIALS,
                    f"You have no account linked at provider '{provider.name}' and this server shares none there: "
                    f"link one with PUT /api/v1/provider/{provider.name}/credentials/.",
                    provider=provider.name,
                )
            )
        except ProviderError as error:
            logger.warning("preflight: no driver for %s: %s", provider.name, error)
    if add_nodes > 0:
        reasons += _catalog_reasons(node_type=node_type, region=region)
    if driver is not None and not reasons:
        if quota is READ_QUOTA:
            quota = preflight_quota(owner=owner, region=region)
        reasons += _quota_reasons(quota=quota, node_type=node_type, region=region, add_nodes=add_nodes)
    reasons += _user_limit_reasons(owner=owner, add_nodes=add_nodes, new_clusters=new_clusters)
    return reasons


#: Set by a dry run: the services it runs do not refuse on preflight reasons (the dry run reports them instead).
_deferred = contextvars.ContextVar("preflight_deferred", default=False)


@contextlib.contextmanager
def preflight_deferred():
    """Within this block, `preflight_require` checks nothing: a dry run runs the preflight itself and reports it."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def preflight_require(
    *, owner, node_type: NodeType, region: Region, add_nodes: int, new_clusters: int = 0, quota=READ_QUOTA
) -> None:
    """`preflight_check`, raising PreflightRefused with its reasons if there are any."""
    if _deferred.get():
        return
    reasons = preflight_check(
        owner=owner, node_type=node_type, region=region, add_nodes=add_nodes, new_clusters=new_clusters, quota=quota
    )
    if reasons:
        raise PreflightRefused(reasons)


def _catalog_reasons(*, node_type: NodeType, region: Region) -> list[Reason]:
    provider = region.provider
    region_uri = uris.region_uri(provider.name, region.name)
    type_uri = uris.nodetype_uri(provider.name, node_type.name)  # a cluster's type is its region's provider's
    reasons = []
    if not (provider.available and region.available):
        what = f"Provider '{provider.name}'" if not provider.available else f"Region {region_uri}"
        reasons.append(
            _reason(ReasonCode.REGION_UNAVAILABLE, f"{what} is not available for new nodes.", region=region_uri)
        )
    target = node_type.alias_of if node_type.alias_of_id else None
    offered = region.node_types.filter(pk=node_type.pk).exists()
    if not node_type.available or (target is not None and not target.available) or not offered:
        where = f" in region {region_uri}" if node_type.available and not offered else ""
        stands_for = f" (today's {target.name})" if target is not None else ""
        reasons.append(
            _reason(
                ReasonCode.NODE_TYPE_UNAVAILABLE,
                f"Node type {type_uri}{stands_for} is not available{where} for new nodes.",
                node_type=type_uri,
                region=region_uri,
            )
        )
    return reasons


def _quota_reasons(*, quota: Quota | None, node_type: NodeType, region: Region, add_nodes: int) -> list[Reason]:
    """The provider's account limit, where it told one."""
    if quota is None or quota.limit is None:
        return []
    cpu = (node_type.alias_of if node_type.alias_of_id else node_type).cpu
    requested = quota.cost(nodes=add_nodes, cpu=cpu)
    if quota.in_use + requested <= quota.limit:
        return []
    free = max(quota.limit - quota.in_use, 0)
    return [
        _reason(
            ReasonCode.QUOTA_EXCEEDED,
            f"Your account at '{region.provider.name}' allows {quota.limit} {quota.unit} and uses {quota.in_use}: "
            f"{add_nodes} more node(s) need {requested}, {free} are free. Ask the provider for a higher limit or "
            "ask for fewer nodes.",
            limit=quota.limit,
            in_use=quota.in_use,
            requested=requested,
            unit=quota.unit,
        )
    ]


def _user_limit_reasons(*, owner, add_nodes: int, new_clusters: int) -> list[Reason]:
    """The operator's limits per user (MAX_NODES_PER_USER, MAX_CLUSTERS_PER_USER; 0 is no limit)."""
    reasons = []
    owner_id = getattr(owner, "pk", owner)
    node_limit = settings.MAX_NODES_PER_USER
    if node_limit and add_nodes > 0:
        in_use = Node.objects.filter(owner_id=owner_id).exclude(state=NodeState.TERMINATED).count()
        if in_use + add_nodes > node_limit:
            reasons.append(
                _reason(
                    ReasonCode.USER_LIMIT,
                    f"This server allows {node_limit} live node(s) per user; you have {in_use} and ask for "
                    f"{add_nodes} more.",
                    limit=node_limit,
                    in_use=in_use,
                    requested=add_nodes,
                    resource="nodes",
                )
            )
    cluster_limit = settings.MAX_CLUSTERS_PER_USER
    if cluster_limit and new_clusters > 0:
        in_use = NodeCluster.objects.filter(owner_id=owner_id).exclude(state=NodeClusterState.TERMINATED).count()
        if in_use + new_clusters > cluster_limit:
            reasons.append(
                _reason(
                    ReasonCode.USER_LIMIT,
                    f"This server allows {cluster_limit} node cluster(s) per user (not terminated); you have {in_use}.",
                    limit=cluster_limit,
                    in_use=in_use,
                    requested=new_clusters,
                    resource="node_clusters",
                )
            )
    return reasons
