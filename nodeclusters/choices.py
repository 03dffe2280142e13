"""State names and the allowed-transition tables: the only place state strings are spelled."""

from django.db import models


class NodeClusterState(models.TextChoices):
    """Lifecycle of a node cluster, as Tutum named it (labels spelled like the values, for the dashboard)."""

    INIT = "Init"
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    PARTLY_DEPLOYED = "Partly deployed", "Partly deployed"
    SCALING = "Scaling"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"
    EMPTY_CLUSTER = "Empty cluster", "Empty cluster"


class NodeState(models.TextChoices):
    """Lifecycle of one node (one cloud instance)."""

    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    UNREACHABLE = "Unreachable"
    UPGRADING = "Upgrading"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


class ActionState(models.TextChoices):
    """Lifecycle of an action (one API call and the work it started)."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress", "In progress"
    CANCELING = "Canceling"
    CANCELED = "Canceled"
    SUCCESS = "Success"
    FAILED = "Failed"


class NodeClusterOperation(models.TextChoices):
    """What a caller may ask of a node cluster; each maps to the states it is allowed from."""

    DEPLOY = "deploy"
    SCALE = "scale"
    TERMINATE = "terminate"
    DOCKER_UPGRADE = "docker-upgrade"


class NodeOperation(models.TextChoices):
    """What a caller may ask of one node."""

    TERMINATE = "terminate"
    DOCKER_UPGRADE = "docker-upgrade"
    HEALTH_CHECK = "health-check"


_C = NodeClusterState
#: The reference's table, relaxed as the API issue asks: a scale is accepted while deploying or scaling (the
#: latest target wins) and before deploy (it only changes the target).
NODE_CLUSTER_ALLOWED = {
    NodeClusterOperation.DEPLOY: frozenset({_C.INIT}),
    NodeClusterOperation.SCALE: frozenset(
        {_C.INIT, _C.DEPLOYING, _C.DEPLOYED, _C.PARTLY_DEPLOYED, _C.SCALING, _C.EMPTY_CLUSTER}
    ),
    NodeClusterOperation.TERMINATE: frozenset(set(_C) - {_C.TERMINATING, _C.TERMINATED}),
    NodeClusterOperation.DOCKER_UPGRADE: frozenset({_C.DEPLOYED, _C.PARTLY_DEPLOYED}),
}

_N = NodeState
NODE_ALLOWED = {
    NodeOperation.TERMINATE: frozenset({_N.DEPLOYED, _N.UNREACHABLE}),
    NodeOperation.DOCKER_UPGRADE: frozenset({_N.DEPLOYED}),
    NodeOperation.HEALTH_CHECK: frozenset({_N.DEPLOYED, _N.UNREACHABLE}),
}

#: Cluster states in which the engine still has work to do.
NODE_CLUSTER_BUSY_STATES = frozenset({_C.DEPLOYING, _C.SCALING, _C.TERMINATING})
#: Node states with an engine step in flight.
NODE_IN_TRANSIT_STATES = frozenset({_N.DEPLOYING, _N.TERMINATING, _N.UPGRADING})
#: Nodes that are up (whether or not Docker answers right now): they count towards `current_num_nodes`.
NODE_UP_STATES = frozenset({_N.DEPLOYED, _N.UNREACHABLE, _N.UPGRADING})

ACTION_OPEN_STATES = frozenset({ActionState.PENDING, ActionState.IN_PROGRESS, ActionState.CANCELING})
ACTION_CANCELABLE_STATES = frozenset({ActionState.PENDING, ActionState.IN_PROGRESS})
ACTION_RETRYABLE_STATES = frozenset({ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED})


def allowed_operations(table: dict, state: str) -> list[str]:
    """The operations a table allows from `state`, in the table's order, for error messages."""
    return [str(operation) for operation, states in table.items() if state in states]


class EventType(models.TextChoices):
    """What an event of the Stream API is about (Tutum's `type`)."""

    NODE_CLUSTER = "nodecluster"
    NODE = "node"
    ACTION = "action"


class EventAction(models.TextChoices):
    """What happened to the object (Tutum's `action`)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


#: Action states after which an action never changes again: a followed action log ends there.
ACTION_FINAL_STATES = frozenset({ActionState.SUCCESS, ActionState.FAILED, ActionState.CANCELED})


class ActionName(models.TextChoices):
    """What an action is called (Tutum's `action` field); the engine also looks actions up by name."""

    NODE_CLUSTER_CREATE = "Node Cluster Create"
    NODE_CLUSTER_DEPLOY = "Node Cluster Deploy"
    NODE_CLUSTER_UPDATE = "Node Cluster Update"
    NODE_CLUSTER_SCALE = "Node Cluster Scale"
    NODE_CLUSTER_TERMINATE = "Node Cluster Terminate"
    NODE_CLUSTER_DOCKER_UPGRADE = "Node Cluster Docker Upgrade"
    NODE_UPDATE = "Node Update"
    NODE_TERMINATE = "Node Terminate"
    NODE_HEALTH_CHECK = "Node Health Check"
    NODE_DOCKER_UPGRADE = "Node Docker Upgrade"
    NODE_CLUSTER_REPAIR = "Node Cluster Repair"  # the engine's self-repair (never a user's)
    WEBHOOK_CREATE = "Webhook Create"
    WEBHOOK_DELETE = "Webhook Delete"
    WEBHOOK_DISABLE = "Webhook Disable"
    WEBHOOK_ENABLE = "Webhook Enable"
    PROVIDER_CREDENTIALS_LINK = "Provider Credentials Link"
    PROVIDER_CREDENTIALS_UNLINK = "Provider Credentials Unlink"


class ReasonCode(models.TextChoices):
    """Why something was refused or failed: one table for preflight refusals, failed node steps, failed actions and
    nodes (`failure_reason_code`). Drivers raise errors carrying the provider-level codes (providers.errors)."""

    # Refusals before anything is accepted (preflight).
    NO_CREDENTIALS = "no_credentials"
    QUOTA_EXCEEDED = "quota_exceeded"
    NODE_TYPE_UNAVAILABLE = "node_type_unavailable"
    REGION_UNAVAILABLE = "region_unavailable"
    USER_LIMIT = "user_limit"
    # What a provider answered.
    CAPACITY_UNAVAILABLE = "capacity_unavailable"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    INVALID_REQUEST = "invalid_request"
    PROVIDER_ERROR = "provider_error"
    # What the engine saw.
    BOOT_TIMEOUT = "boot_timeout"
    INSTANCE_GONE = "instance_gone"
    UNREACHABLE = "unreachable"
    CANCELED = "canceled"
    SUPERSEDED = "superseded"


class ScaleInPolicy(models.TextChoices):
    """Which nodes a scale-down removes first (after those that never came up and unreachable ones)."""

    NEWEST_FIRST = "newest_first"
    OLDEST_FIRST = "oldest_first"


class StepKind(models.TextChoices):
    """One node's part of an action (an action's `steps`)."""

    CREATE = "create"
    BOOT = "boot"
    TERMINATE = "terminate"
    REPAIR = "repair"
    UPGRADE = "upgrade"


class StepState(models.TextChoices):
    """Lifecycle of one step, spelled like the action states."""

    PENDING = "Pending"  # not started: a node's boot step while its instance is being created
    IN_PROGRESS = "In progress", "In progress"
    SUCCESS = "Success"
    FAILED = "Failed"
    CANCELED = "Canceled"


#: A step that has not ended: waiting to start, or under way.
UNFINISHED_STEP_STATES = frozenset({StepState.PENDING, StepState.IN_PROGRESS})


class CredentialKind(models.TextChoices):
    """What a linked cloud account holds."""

    TOKEN = "token"  # DigitalOcean API token
    ACCESS_KEY = "access_key"  # AWS access key id and secret
    ROLE = "role"  # AWS role assumed through STS with an external id


class WebhookDeliveryState(models.TextChoices):
    PENDING = "Pending"
    DELIVERED = "Delivered"
    FAILED = "Failed"  # given up: the webhook failed for WEBHOOK_GIVE_UP_SECONDS
