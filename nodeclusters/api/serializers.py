"""Serializers: input ones validate requests for the services; output ones render Tutum's exact representations.

Output serializers declare their fields (for the schema) but build the dict directly: a list page renders
25 clusters with dozens of URIs each, and per-field serializer machinery would dominate its cost.
"""

import json

from rest_framework import serializers

from nodeclusters.choices import ActionState, NodeClusterState, NodeState
from nodeclusters.models import Action, ActionLogLine, AvailabilityZone, Node, NodeType, Provider, Region
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822
from nodeclusters.wire.grammar import decimal_range_pattern, fullmatch, uri_input_pattern

from .schema import (
    BLANK_NAME_PATTERN,
    MAX_NAME_LENGTH,
    MAX_TAGS,
    NAME_PATTERN,
    TAG_NAME_PATTERN,
    DateField,
    TagsField,
    max_nodes_per_cluster,
    uri_field,
    uri_list,
)

MAX_NODES_PER_CLUSTER = max_nodes_per_cluster()


def _has_surrogate(text: str) -> bool:
    """Whether JSON's `\\udXXX` escapes put a lone surrogate in the text (no database can store one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class TextField(serializers.Field):
    """Free text (a name, a nickname): at most `max_length` characters as sent, no NUL, not only whitespace
    unless `blank`; stored without the whitespace around it. The document states it as `pattern`."""

    default_error_messages = {
        "invalid": "Expected a string.",
        "max_length": "At most {max_length} characters.",
        "nul": "May not contain NUL or unpaired surrogate characters.",
        "blank": "May not be blank.",
    }

    def __init__(self, *, max_length: int, blank: bool = False, **kwargs):
        self.max_length = max_length
        self.pattern = BLANK_NAME_PATTERN if blank else NAME_PATTERN
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if len(data) > self.max_length:  # first: the pattern then only ever reads a short string
            self.fail("max_length", max_length=self.max_length)
        if "\x00" in data or _has_surrogate(data):
            self.fail("nul")
        if not fullmatch(self.pattern, data):
            self.fail("blank")
        return data.strip()

    def to_representation(self, value):
        return value


class NumberField(serializers.Field):
    """An integer in a range, as a JSON integer or as its decimal text (Tutum's CLI sends `--disk` as text).
    Never a boolean or a fraction. The document states it as `integer_schema`."""

    default_error_messages = {"invalid": "Expected an integer from {low} to {high}."}

    def __init__(self, *, min_value: int, max_value: int, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        self.text_pattern = decimal_range_pattern(min_value, max_value)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and fullmatch(self.text_pattern, data):
            return int(data)
        if isinstance(data, int) and not isinstance(data, bool) and self.min_value <= data <= self.max_value:
            return data
        self.fail("invalid", low=self.min_value, high=self.max_value)

    def to_representation(self, value):
        return value


class QueryNumberField(serializers.Field):
    """A whole number in a query string: ASCII digits only (no sign, space or `_`, which Python's int() takes)."""

    default_error_messages = {"invalid": "Expected a whole number from {low} to {high}."}

    def __init__(self, *, min_value: int, max_value: int, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and fullmatch(r"^[0-9]+$", data) and self.min_value <= int(data) <= self.max_value:
            return int(data)
        self.fail("invalid", low=self.min_value, high=self.max_value)

    def to_representation(self, value):
        return value


class TagListField(serializers.Field):
    """Tutum's tags: `[{"name": "tag-1"}, ...]` (plain strings are accepted too); stored as a list of names.
    The document states it as `tag_list_schema`."""

    default_error_messages = {
        # Doubled braces: DRF's fail() runs these messages through str.format.
        "invalid": 'Expected a list of tags such as [{{"name": "tag-1"}}].',
        "too_many": f"At most {MAX_TAGS} tags.",
        "bad_name": (
            f"Tag names are at most {MAX_NAME_LENGTH} characters, not only whitespace, with no control character, "
            "line separator or bidirectional control; got {value!r}."
        ),
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
            if len(name) > MAX_NAME_LENGTH or _has_surrogate(name) or not fullmatch(TAG_NAME_PATTERN, name):
                self.fail("bad_name", value=name)
            names.append(name.strip())
        return names

    def to_representation(self, value):
        return [{"name": name} for name in value]


class CatalogURIField(serializers.Field):
    """A catalog object given by its resource URI (`/api/v1/region/digitalocean/lon1/`)."""

    def __init__(self, *, kind: str, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # The document's pattern first: it also keeps out what `uris.parse` cannot take (`http://[`).
        if not fullmatch(uri_input_pattern(self.kind), data) or _has_surrogate(data):
            raise serializers.ValidationError(
                f"Expected a {self.kind} resource URI such as {uris.EXAMPLES[self.kind]}, got {data!r}."
            )
        parts = uris.parse(self.kind, data)
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


class RegionURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="region", **kwargs)


class NodeTypeURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="nodetype", **kwargs)


class ProviderOptionsField(serializers.Field):
    """`provider_options`: an object (null is the same as `{}`); the service checks it against the provider."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Expected an object such as {"vpc": {"id": "vpc-..."}}.')
        if _has_surrogate(json.dumps(data, ensure_ascii=False)):
            raise serializers.ValidationError("May not contain unpaired surrogate characters.")
        return data

    def validate_empty_values(self, data):
        if data is None:
            return (True, {})  # null: no options, as Tutum's clients send for other providers
        return super().validate_empty_values(data)

    def to_representation(self, value):
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (including read-only ones) instead of silently ignoring them."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
        # Named in the answer as sent, but half a surrogate pair (a JSON escape) could not be written back out.
        unknown = [name.encode("utf-8", "backslashreplace").decode() for name in unknown]
        if unknown:
            writable = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            raise serializers.ValidationError(
                {name: [f"Unknown or read-only field. Fields you can set here: {writable}."] for name in unknown}
            )
        return super().to_internal_value(data)


class NodeClusterCreateSerializer(StrictSerializer):
    name = TextField(max_length=MAX_NAME_LENGTH)
    node_type = NodeTypeURIField()
    region = RegionURIField()
    target_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, default=1)
    disk = NumberField(min_value=10, max_value=16384, default=60, help_text="Disk size of each node, in GB")
    nickname = TextField(max_length=MAX_NAME_LENGTH, blank=True, required=False, default="")
    tags = TagListField(required=False, default=list)
    provider_options = ProviderOptionsField(required=False, default=dict)


class NodeClusterUpdateSerializer(StrictSerializer):
    target_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, required=False)
    tags = TagListField(required=False)
    nickname = TextField(max_length=MAX_NAME_LENGTH, required=False)


class NodeUpdateSerializer(StrictSerializer):
    nickname = TextField(max_length=255, required=False)
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
    """Output: an action with every attribute of Tutum's reference.

    No `logs` key: python-tutum copies every key onto its Action object, where one named `logs` would hide the
    `Action.logs()` method the official CLI calls. The log is read at `/api/v1/action/<uuid>/logs/` instead.
    """

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
        }


class ActionLogQuerySerializer(serializers.Serializer):
    """Input: the query of an action's log."""

    # The ceiling only keeps the number a valid SQL LIMIT; any tail longer than the log is the whole log.
    tail = QueryNumberField(
        min_value=0, max_value=2**31 - 1, required=False, help_text="Only the last N lines (default: every line)"
    )


class ActionLogLineSerializer(serializers.Serializer):
    """Output: one line of an action's log, shaped like the Stream API's log messages."""

    type = serializers.CharField(help_text="Always `log`, as in the Stream API")
    log = serializers.CharField(help_text="The line's text")
    timestamp = serializers.IntegerField(help_text="When the line was written, in Unix seconds")

    def to_representation(self, line: ActionLogLine) -> dict:
        return {"type": "log", "log": line.message, "timestamp": int(line.created_at.timestamp())}


class ActionLogSerializer(serializers.Serializer):
    """Output: an action's log lines, oldest first."""

    objects = ActionLogLineSerializer(many=True)

    def to_representation(self, lines: list[ActionLogLine]) -> dict:
        line_serializer = ActionLogLineSerializer()
        return {"objects": [line_serializer.to_representation(line) for line in lines]}


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
