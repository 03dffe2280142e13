"""Serializers: input ones validate requests for the services; output ones render Tutum's exact representations.

Output serializers declare their fields (for the schema) but build the dict directly: a list page renders
25 clusters with dozens of URIs each, and per-field serializer machinery would dominate its cost.
"""

from rest_framework import serializers

from nodeclusters.choices import (
    ActionState,
    NodeClusterState,
    NodeState,
    ReasonCode,
    ScaleInPolicy,
    StepKind,
    StepState,
)
from nodeclusters.models import Action, ActionLogLine, AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region
from nodeclusters.selectors import action_steps
from nodeclusters.services.accounts import linked_provider_ids, provider_available_for
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822

from .fields import (
    MAX_NODES_PER_CLUSTER,
    NodeTypeURIField,
    NodeURIListField,
    NumberField,
    ProviderOptionsField,
    QueryBooleanField,
    QueryNumberField,
    RegionURIField,
    TagListField,
    TextField,
)
from .schema import (
    MAX_NAME_LENGTH,
    DateField,
    TagsField,
    uri_field,
    uri_list,
)


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


class ClusterControlSerializer(StrictSerializer):
    """What a cluster's owner controls beyond Tutum's fields (all optional): scale-in order, bounds, self-repair."""

    scale_in_policy = serializers.ChoiceField(choices=ScaleInPolicy.choices, required=False)
    min_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, required=False, allow_null=True)
    max_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, required=False, allow_null=True)
    unhealthy_timeout = NumberField(
        min_value=60, max_value=604800, required=False, help_text="Seconds a node may stay Unreachable"
    )
    max_unhealthy_percent = NumberField(min_value=0, max_value=100, required=False)
    max_repairs_per_hour = NumberField(min_value=0, max_value=1000, required=False, help_text="0 turns repair off")


class NodeClusterCreateSerializer(ClusterControlSerializer):
    name = TextField(max_length=MAX_NAME_LENGTH)
    node_type = NodeTypeURIField()
    region = RegionURIField()
    target_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, default=1)
    disk = NumberField(min_value=10, max_value=16384, default=60, help_text="Disk size of each node, in GB")
    nickname = TextField(max_length=MAX_NAME_LENGTH, blank=True, required=False, default="")
    tags = TagListField(required=False, default=list)
    provider_options = ProviderOptionsField(required=False, default=dict)


class NodeClusterUpdateSerializer(ClusterControlSerializer):
    target_num_nodes = NumberField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, required=False)
    tags = TagListField(required=False)
    nickname = TextField(max_length=MAX_NAME_LENGTH, required=False)
    remove_nodes = NodeURIListField(
        required=False,
        help_text="Nodes of this cluster to terminate first; the target drops by their number unless "
        "target_num_nodes is given",
    )


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
    scale_in_policy = serializers.ChoiceField(choices=ScaleInPolicy.choices)
    min_num_nodes = serializers.IntegerField(allow_null=True)
    max_num_nodes = serializers.IntegerField(allow_null=True)
    unhealthy_timeout = serializers.IntegerField()
    max_unhealthy_percent = serializers.IntegerField()
    max_repairs_per_hour = serializers.IntegerField()

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
            **{name: row[name] for name in NodeCluster.CONTROL_FIELDS},
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
    failure_reason_code = serializers.ChoiceField(
        choices=ReasonCode.choices,
        allow_null=True,
        help_text="Why the node failed or was replaced (null if it did not)",
    )

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
            "failure_reason_code": node.failure_reason_code or None,
        }


class ActionStepSerializer(serializers.Serializer):
    """Output: one node's step within an action."""

    node = uri_field("node")
    step = serializers.ChoiceField(choices=StepKind.choices)
    state = serializers.ChoiceField(choices=StepState.choices)
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices, allow_null=True)
    message = serializers.CharField()
    start_date = DateField()
    end_date = DateField()

    def to_representation(self, step) -> dict:
        return {
            "node": uris.node_uri(step.node_id),
            "step": step.step,
            "state": step.state,
            "reason_code": step.reason_code or None,
            "message": step.message,
            "start_date": format_rfc2822(step.start_date),
            "end_date": format_rfc2822(step.end_date),
        }


class ActionSerializer(serializers.Serializer):
    """Output: an action with every attribute of Tutum's reference, its `reason_code` when it failed, and on its own
    (not in lists, where they would cost a query per page and be long) its per-node `steps`.

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
    reason_code = serializers.ChoiceField(
        choices=ReasonCode.choices, allow_null=True, help_text="Why the action failed (null unless it did)"
    )
    steps = ActionStepSerializer(
        many=True, required=False, help_text="One entry per node step, oldest first; only on a single action"
    )

    def to_representation(self, action: Action) -> dict:
        body = {
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
            "reason_code": action.reason_code or None,
        }
        if not isinstance(self.parent, serializers.ListSerializer):  # a single action: one query for its steps
            step_serializer = ActionStepSerializer()
            body["steps"] = [step_serializer.to_representation(step) for step in action_steps(action=action)]
        return body


class DryRunQuerySerializer(serializers.Serializer):
    dry_run = QueryBooleanField(
        required=False,
        help_text="true: answer 200 with what the request would do (its plan and preflight) and change nothing",
    )


class PreflightReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="One of the reason codes in the README (e.g. quota_exceeded)")
    message = serializers.CharField()


class DryRunPlanSerializer(serializers.Serializer):
    create = serializers.IntegerField(min_value=0, help_text="Nodes the engine would create")
    terminate = uri_list("node")
    target_num_nodes = serializers.IntegerField(min_value=0)


class DryRunPreflightSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    reasons = PreflightReasonSerializer(many=True)


class DryRunSerializer(serializers.Serializer):
    """The answer to `?dry_run=true`: nothing was recorded or changed."""

    dry_run = serializers.BooleanField()
    plan = DryRunPlanSerializer()
    preflight = DryRunPreflightSerializer()


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
