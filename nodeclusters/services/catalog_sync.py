"""The live catalog: regions, zones and node types as each provider's API lists them today, with prices.

Synced with the operator's credentials (the shared driver), one transaction per provider. Entries a provider no
longer lists are marked unavailable, never deleted (clusters and nodes reference them). Tutum's 2015 names stay
rows: each is an alias (`NodeType.alias_of`, nodeclusters.catalog.LEGACY_ALIASES) and follows its target, so it is
available, and offered in the regions, exactly where today's equivalent is.
"""

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from nodeclusters.catalog import catalog_aliases_load
from nodeclusters.catalog_rows import catalog_rows_forget
from nodeclusters.exceptions import InvalidRequest
from nodeclusters.models import AvailabilityZone, NodeType, Provider, Region
from providers.base import Catalog, ProviderError

from .accounts import shared_driver
from .locks import retried_atomic

logger = logging.getLogger(__name__)


@dataclass
class SyncResult:
    """What one provider's sync changed (or why it changed nothing)."""

    provider: str
    regions: int = 0
    node_types: int = 0
    added: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    error: str = ""

    def __str__(self) -> str:
        if self.error:
            return f"{self.provider}: not synced: {self.error}"
        text = f"{self.provider}: {self.regions} regions, {self.node_types} node types"
        if self.added:
            text += f"; new: {', '.join(self.added)}"
        if self.unavailable:
            text += f"; no longer offered: {', '.join(self.unavailable)}"
        return text


def catalog_sync(provider_names: list[str] | None = None) -> list[SyncResult]:
    """Sync the named providers (all in the catalog when None) from their APIs; a provider that cannot be read
    keeps its catalog as it was and reports why."""
    providers = Provider.objects.order_by("name")
    if provider_names:
        known = set(providers.filter(name__in=provider_names).values_list("name", flat=True))
        unknown = sorted(set(provider_names) - known)
        if unknown:
            raise InvalidRequest(f"No provider {', '.join(unknown)} in the catalog.")
        providers = providers.filter(name__in=provider_names)
    results = []
    for provider in providers:
        try:
            catalog = shared_driver(provider.name).fetch_catalog()
        except ProviderError as error:
            logger.warning("catalog sync of %s failed: %s", provider.name, error)
            results.append(SyncResult(provider.name, error=str(error)))
            continue
        if not catalog.regions or not catalog.node_types:
            # Never read an empty answer as "everything is gone".
            results.append(SyncResult(provider.name, error="the provider listed no regions or no node types"))
            continue
        result = catalog_apply(provider=provider, catalog=catalog)
        logger.info("catalog sync: %s", result)
        results.append(result)
    catalog_rows_forget()  # this process's node steps read the new rows at once (others within CATALOG_ROWS_SECONDS)
    return results


@retried_atomic
def catalog_apply(*, provider: Provider, catalog: Catalog) -> SyncResult:
    """Write one provider's catalog: upsert what it lists, mark unavailable what it no longer lists."""
    now = timezone.now()
    result = SyncResult(provider.name, regions=len(catalog.regions), node_types=len(catalog.node_types))
    regions = {region.name: region for region in Region.objects.filter(provider=provider)}
    zones = {}
    for listed in catalog.regions:
        region = regions.get(listed.name)
        if region is None:
            region = regions[listed.name] = Region.objects.create(
                provider=provider, name=listed.name, label=listed.label, available=listed.available
            )
            result.added.append(f"region {listed.name}")
        elif (region.label, region.available) != (listed.label, listed.available):
            Region.objects.filter(pk=region.pk).update(label=listed.label, available=listed.available)
        for zone_name in listed.zones:
            zone, _ = AvailabilityZone.objects.get_or_create(region=region, name=zone_name)
            zones[zone_name] = zone
        AvailabilityZone.objects.filter(region=region).exclude(name__in=listed.zones).update(available=False)
        AvailabilityZone.objects.filter(region=region, name__in=listed.zones).update(available=True)
    listed_regions = {listed.name for listed in catalog.regions}
    gone = Region.objects.filter(provider=provider, available=True).exclude(name__in=listed_regions)
    result.unavailable += [f"region {name}" for name in gone.values_list("name", flat=True)]
    AvailabilityZone.objects.filter(region__in=gone).update(available=False)
    gone.update(available=False)

    types = {node_type.name: node_type for node_type in NodeType.objects.filter(provider=provider)}
    synced_names = set()
    for listed in catalog.node_types:
        existing = types.get(listed.name)
        if existing is not None and existing.alias_of_id:
            continue  # a legacy name is always an alias of today's equivalent, whatever the provider still lists
        values = {
            "label": listed.label or listed.name,
            "cpu": listed.cpu,
            "memory": listed.memory_mb,
            "disk": listed.disk_gb,
            "price_monthly": listed.price_monthly,
            "price_hourly": listed.price_hourly,
            "available": listed.available,
            "synced_at": now,
        }
        node_type, created = NodeType.objects.update_or_create(provider=provider, name=listed.name, defaults=values)
        if created:
            result.added.append(f"node type {listed.name}")
        node_type.regions.set([regions[name] for name in listed.regions if name in regions])
        node_type.availability_zones.set([zones[name] for name in listed.zones if name in zones])
        synced_names.add(listed.name)
    stale = NodeType.objects.filter(provider=provider, alias_of__isnull=True, available=True).exclude(
        name__in=synced_names
    )
    result.unavailable += [f"node type {name}" for name in stale.values_list("name", flat=True)]
    stale.update(available=False)

    catalog_aliases_load(NodeType, provider=provider)
    _aliases_follow_targets(provider)
    return result


def _aliases_follow_targets(provider: Provider) -> None:
    """Each legacy alias is available, and offered in the regions and zones, exactly where its target is."""
    for alias in NodeType.objects.filter(provider=provider, alias_of__isnull=False).select_related("alias_of"):
        target = alias.alias_of
        NodeType.objects.filter(pk=alias.pk).update(available=target.available)
        alias.regions.set(target.regions.all())
        alias.availability_zones.set(target.availability_zones.all())
