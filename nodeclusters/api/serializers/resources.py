"""Output: a node cluster, a node and an action exactly as Tutum wrote them."""

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
from nodeclusters.models import Action, Node, NodeCluster
from nodeclusters.selectors import action_steps
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822

from ..schema import DateField, TagsField, uri_field, uri_list


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
