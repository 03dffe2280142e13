"""Output: the catalog (provider, region, availability zone, node type), with what the caller's account offers."""

from rest_framework import serializers

from nodeclusters.models import AvailabilityZone, NodeType, Provider, Region
from nodeclusters.services.accounts import linked_provider_ids, provider_available_for
from nodeclusters.wire import uris

from ..schema import uri_field, uri_list


class ProviderSerializer(serializers.Serializer):
    """Output: a cloud provider."""

    resource_uri = uri_field("provider")
    name = serializers.CharField()
    label = serializers.CharField()
    regions = uri_list("region")
    available = serializers.BooleanField()

    def to_representation(self, provider: Provider) -> dict:
        return {
            "available": self._available(provider),
            "label": provider.label,
            "name": provider.name,
            "regions": [uris.region_uri(provider.name, region.name) for region in provider.regions.all()],
            "resource_uri": uris.provider_uri(provider.name),
        }

    def _available(self, provider: Provider) -> bool:
        """Per caller: offered, and the caller can deploy there (an account of their own, or the shared one)."""
        request = self.context.get("request")
        if request is None or not getattr(request.user, "is_authenticated", False):
            return provider.available
        if "_linked_provider_ids" not in self.context:  # once per page (the context is the list's)
            self.context["_linked_provider_ids"] = linked_provider_ids(owner=request.user)
        return provider_available_for(provider=provider, linked_provider_ids=self.context["_linked_provider_ids"])


class RegionSerializer(serializers.Serializer):
    """Output: a region with its node types and availability zones."""

    resource_uri = uri_field("region")
    name = serializers.CharField()
    label = serializers.CharField()
    node_types = uri_list("nodetype")
    availability_zones = uri_list("az")
    provider = uri_field("provider")
    available = serializers.BooleanField()

    def to_representation(self, region: Region) -> dict:
        provider_name = region.provider.name
        return {
            "availability_zones": [
                uris.az_uri(provider_name, region.name, zone.name) for zone in region.availability_zones.all()
            ],
            "available": region.available,
            "label": region.label,
            "name": region.name,
            "node_types": [uris.nodetype_uri(provider_name, node_type.name) for node_type in region.node_types.all()],
            "provider": uris.provider_uri(provider_name),
            "resource_uri": uris.region_uri(provider_name, region.name),
        }


class AvailabilityZoneSerializer(serializers.Serializer):
    """Output: an availability zone."""

    resource_uri = uri_field("az")
    name = serializers.CharField()
    region = uri_field("region")
    available = serializers.BooleanField()

    def to_representation(self, zone: AvailabilityZone) -> dict:
        provider_name = zone.region.provider.name
        return {
            "available": zone.available,
            "name": zone.name,
            "region": uris.region_uri(provider_name, zone.region.name),
            "resource_uri": uris.az_uri(provider_name, zone.region.name, zone.name),
        }


class NodeTypeSerializer(serializers.Serializer):
    """Output: a node type with the regions and zones that offer it."""

    resource_uri = uri_field("nodetype")
    name = serializers.CharField()
    label = serializers.CharField()
    regions = uri_list("region")
    availability_zones = uri_list("az")
    provider = uri_field("provider")
    available = serializers.BooleanField()
    price_monthly = serializers.FloatField(allow_null=True, help_text="US dollars, where the provider's API says")
    price_hourly = serializers.FloatField(allow_null=True, help_text="US dollars, where the provider's API says")
    alias_of = uri_field("nodetype", nullable=True)

    def to_representation(self, node_type: NodeType) -> dict:
        provider_name = node_type.provider.name
        return {
            "alias_of": uris.nodetype_uri(provider_name, node_type.alias_of.name) if node_type.alias_of_id else None,
            "price_hourly": float(node_type.price_hourly) if node_type.price_hourly is not None else None,
            "price_monthly": float(node_type.price_monthly) if node_type.price_monthly is not None else None,
            "availability_zones": [
                uris.az_uri(provider_name, zone.region.name, zone.name) for zone in node_type.availability_zones.all()
            ],
            "available": node_type.available,
            "label": node_type.label,
            "name": node_type.name,
            "provider": uris.provider_uri(provider_name),
            "regions": [uris.region_uri(provider_name, region.name) for region in node_type.regions.all()],
            "resource_uri": uris.nodetype_uri(provider_name, node_type.name),
        }
