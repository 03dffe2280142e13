"""Serializers: input ones validate requests for the services; output ones render Tutum's exact representations.

Output serializers declare their fields (for the schema) but build the dict directly: a list page renders
25 clusters with dozens of URIs each, and per-field serializer machinery would dominate its cost.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, AvailabilityZone, Node, NodeType, Provider, Region

from . import uris
from .dates import format_rfc2822
from .schema import DateField, TagsField, uri_field, uri_list

MAX_NODES_PER_CLUSTER = getattr(settings, "MAX_NODES_PER_CLUSTER", 1000)
MAX_TAGS = 64


@extend_schema_field(TagsField)
class TagListField(serializers.Field):
    """Tutum's tags: `[{"name": "tag-1"}, ...]` (plain strings are accepted too); stored as a list of names."""

    default_error_messages = {
        # Doubled braces: DRF's fail() runs these messages through str.format.
        "invalid": 'Expected a list of tags such as [{{"name": "tag-1"}}].',
        "too_many": f"At most {MAX_TAGS} tags.",
        "bad_name": "Tag names are 1 to 128 printable characters; got {value!r}.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("invalid")
        if len(data) > MAX_TAGS:
            self.fail("too_many")
        names = []
        for item in data:
            name = item.get("name") if isinstance(item, dict) and set(item) <= {"name", "origin"} else item
            if not isinstance(name, str):
                self.fail("invalid")
            name = name.strip()
            if not name or len(name) > 128 or not name.isprintable():
                self.fail("bad_name", value=name)
            names.append(name)
        return names

    def to_representation(self, value):
        return [{"name": name} for name in value]


class CatalogURIField(serializers.Field):
    """A catalog object given by its resource URI (`/api/v1/region/digitalocean/lon1/`)."""

    def __init__(self, *, kind: str, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            parts = uris.parse(self.kind, data)
        except uris.InvalidResourceURI as error:
            raise serializers.ValidationError(str(error)) from None
        if self.kind == "region":
            found = Region.objects.select_related("provider").filter(
                provider__name=parts["provider"], name=parts["name"]
            )
        else:
            found = NodeType.objects.select_related("provider").filter(
                provider__name=parts["provider"], name=parts["name"]
            )
        instance = found.first()
        if instance is None:
            listing = "/api/v1/region/" if self.kind == "region" else "/api/v1/nodetype/"
            raise serializers.ValidationError(f"No {self.kind} at {data}; GET {listing} lists them.")
        return instance

    def to_representation(self, value):
        raise NotImplementedError  # input only


@extend_schema_field(
    {"type": "string", "pattern": r"^/api/v1/region/[^/]+/[^/]+/$", "example": uris.EXAMPLES["region"]}
)
class RegionURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="region", **kwargs)


@extend_schema_field(
    {"type": "string", "pattern": r"^/api/v1/nodetype/[^/]+/[^/]+/$", "example": uris.EXAMPLES["nodetype"]}
)
class NodeTypeURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="nodetype", **kwargs)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (including read-only ones) instead of silently ignoring them."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
        if unknown:
            writable = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            raise serializers.ValidationError(
                {name: [f"Unknown or read-only field. Fields you can set here: {writable}."] for name in unknown}
            )
        return super().to_internal_value(data)


class NodeClusterCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=128)
    node_type = NodeTypeURIField()
    region = RegionURIField()
    target_num_nodes = serializers.IntegerField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, default=1)
    disk = serializers.IntegerField(min_value=10, max_value=16384, default=60)
    nickname = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    tags = TagListField(required=False, default=list)
    provider_options = serializers.JSONField(
        required=False, default=dict, help_text='AWS only: {"vpc": {"id", "subnets", "security_groups"}, "iam": {...}}'
    )

    def validate_provider_options(self, value):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError('Expected an object such as {"vpc": {"id": "vpc-..."}}.')
        return value


class NodeClusterUpdateSerializer(StrictSerializer):
    target_num_nodes = serializers.IntegerField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, required=False)
    tags = TagListField(required=False)
    nickname = serializers.CharField(max_length=128, required=False, allow_blank=False)


class NodeUpdateSerializer(StrictSerializer):
    nickname = serializers.CharField(max_length=255, required=False, allow_blank=False)
    tags = TagListField(required=False)


class NodeClusterSerializer(serializers.Serializer):
    """Output: a node cluster exactly as Tutum wrote it."""

    uuid = serializers.UUIDField()
    resource_uri = uri_field("nodecluster")
    name = serializers.CharField()
    nickname = serializers.CharField()
    state = serializers.ChoiceField(choices=NodeClusterState.choices)
    node_type = uri_field("nodetype")
    region = uri_field("region")
    disk = serializers.IntegerField()
    nodes = uri_list("node")
    actions = uri_list("action")
    target_num_nodes = serializers.IntegerField()
    current_num_nodes = serializers.IntegerField()
    deployed_datetime = DateField()
    destroyed_datetime = DateField()
    tags = TagsField()
    provider_options = serializers.DictField()

    def to_representation(self, row: dict) -> dict:
        """From a row of `selectors.node_cluster_list`."""
        provider_name = row["provider_name"]
        return {
            "uuid": str(row["uuid"]),
            "resource_uri": uris.nodecluster_uri(row["uuid"]),
            "name": row["name"],
            "nickname": row["nickname"],
            "state": row["state"],
            "node_type": uris.nodetype_uri(provider_name, row["node_type_name"]),
            "region": uris.region_uri(provider_name, row["region_name"]),
            "disk": row["disk"],
            "nodes": [uris.node_uri(uuid) for uuid in row["node_uuids"]],
            "actions": [uris.action_uri(uuid) for uuid in row["action_uuids"]],
            "target_num_nodes": row["target_num_nodes"],
            "current_num_nodes": row["current_num_nodes"],
            "deployed_datetime": format_rfc2822(row["deployed_datetime"]),
            "destroyed_datetime": format_rfc2822(row["destroyed_datetime"]),
            "tags": [{"name": name} for name in row["tags"]],
            "provider_options": row["provider_options"],
        }


class NodeSerializer(serializers.Serializer):
    """Output: a node with every attribute of Tutum's reference."""

    uuid = serializers.UUIDField()
    resource_uri = uri_field("node")
    availability_zone = uri_field("az", nullable=True)
    cpu = serializers.IntegerField()
    current_num_containers = serializers.IntegerField()
    deployed_datetime = DateField()
    destroyed_datetime = DateField()
    disk = serializers.IntegerField()
    docker_execdriver = serializers.CharField()
    docker_graphdriver = serializers.CharField()
    docker_version = serializers.CharField()
    external_fqdn = serializers.CharField()
    last_seen = DateField()
    last_metric = serializers.DictField()
    memory = serializers.IntegerField()
    nickname = serializers.CharField()
    node_cluster = uri_field("nodecluster", nullable=True)
    node_type = uri_field("nodetype")
    public_ip = serializers.IPAddressField(allow_null=True)
    region = uri_field("region")
    state = serializers.ChoiceField(choices=NodeState.choices)
    tags = TagsField()
    tunnel = serializers.CharField(allow_null=True)

    def to_representation(self, node: Node) -> dict:
        provider_name = node.region.provider.name
        zone = node.availability_zone
        return {
            "uuid": str(node.uuid),
            "resource_uri": uris.node_uri(node.uuid),
            "availability_zone": uris.az_uri(provider_name, zone.region.name, zone.name) if zone else None,
            "cpu": node.cpu,
            "current_num_containers": node.current_num_containers,
            "deployed_datetime": format_rfc2822(node.deployed_datetime),
            "destroyed_datetime": format_rfc2822(node.destroyed_datetime),
            "disk": node.disk,
            "docker_execdriver": node.docker_execdriver,
            "docker_graphdriver": node.docker_graphdriver,
            "docker_version": node.docker_version,
            "external_fqdn": node.external_fqdn,
            "last_seen": format_rfc2822(node.last_seen),
            "last_metric": node.last_metric,
            "memory": node.memory,
            "nickname": node.nickname or node.external_fqdn,
            "node_cluster": uris.nodecluster_uri(node.node_cluster_id) if node.node_cluster_id else None,
            "node_type": uris.nodetype_uri(provider_name, node.node_type.name),
            "public_ip": node.public_ip,
            "region": uris.region_uri(provider_name, node.region.name),
            "state": node.state,
            "tags": [{"name": name} for name in node.tags],
            "tunnel": node.tunnel,
        }


class ActionSerializer(serializers.Serializer):
    """Output: an action with every attribute of Tutum's reference, plus its logs."""

    uuid = serializers.UUIDField()
    resource_uri = uri_field("action")
    action = serializers.CharField()
    object = serializers.CharField()
    method = serializers.CharField()
    path = serializers.CharField()
    user_agent = serializers.CharField()
    start_date = DateField()
    end_date = DateField()
    state = serializers.ChoiceField(choices=ActionState.choices)
    ip = serializers.IPAddressField(allow_null=True)
    location = serializers.CharField()
    body = serializers.CharField()
    is_user_action = serializers.BooleanField()
    can_be_canceled = serializers.BooleanField()
    can_be_retried = serializers.BooleanField()
    logs = serializers.CharField()

    def to_representation(self, action: Action) -> dict:
        return {
            "uuid": str(action.uuid),
            "resource_uri": uris.action_uri(action.uuid),
            "action": action.action,
            "object": action.object_uri,
            "method": action.method,
            "path": action.path,
            "user_agent": action.user_agent,
            "start_date": format_rfc2822(action.start_date),
            "end_date": format_rfc2822(action.end_date),
            "state": action.state,
            "ip": action.ip,
            "location": action.location,
            "body": action.body,
            "is_user_action": action.is_user_action,
            "can_be_canceled": action.can_be_canceled,
            "can_be_retried": action.can_be_retried,
            "logs": action.logs,
        }


class ProviderSerializer(serializers.Serializer):
    """Output: a cloud provider."""

    resource_uri = uri_field("provider")
    name = serializers.CharField()
    label = serializers.CharField()
    regions = uri_list("region")
    available = serializers.BooleanField()

    def to_representation(self, provider: Provider) -> dict:
        return {
            "available": provider.available,
            "label": provider.label,
            "name": provider.name,
            "regions": [uris.region_uri(provider.name, region.name) for region in provider.regions.all()],
            "resource_uri": uris.provider_uri(provider.name),
        }


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

    def to_representation(self, node_type: NodeType) -> dict:
        provider_name = node_type.provider.name
        return {
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
