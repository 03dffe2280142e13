"""Output: a dry run's plan and preflight, and an action's log lines."""

from rest_framework import serializers

from nodeclusters.models import ActionLogLine

from ..schema import uri_list


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
