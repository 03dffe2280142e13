"""Input: what a request may send (bodies and queries), refused field by field with what to fix."""

from rest_framework import serializers

from nodeclusters.choices import ScaleInPolicy

from ..fields import (
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
from ..schema import MAX_NAME_LENGTH


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


class DryRunQuerySerializer(serializers.Serializer):
    dry_run = QueryBooleanField(
        required=False,
        help_text="true: answer 200 with what the request would do (its plan and preflight) and change nothing",
    )


class ActionLogQuerySerializer(serializers.Serializer):
    """Input: the query of an action's log."""

    # The ceiling only keeps the number a valid SQL LIMIT; any tail longer than the log is the whole log.
    tail = QueryNumberField(
        min_value=0, max_value=2**31 - 1, required=False, help_text="Only the last N lines (default: every line)"
    )
