"""Database models: the shared catalog, users' node clusters, nodes and actions, and API keys."""

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import (
    ActionState,
    CredentialKind,
    EventAction,
    EventType,
    NodeClusterState,
    NodeState,
    ReasonCode,
    ScaleInPolicy,
    StepKind,
    StepState,
    WebhookDeliveryState,
)


class Provider(models.Model):
    """A cloud provider offered by this server (e.g. `digitalocean`, `aws`, `local`)."""

    name = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=128)
    available = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Region(models.Model):
    """A provider's data center (or part of one) where nodes can be deployed."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="regions")
    name = models.CharField(max_length=64)
    label = models.CharField(max_length=128)
    available = models.BooleanField(default=True)
    # The engine's, not the catalog's: when it will next look at the booting instances of every cluster in the
    # region, with one provider listing for all of them (claimed with a conditional UPDATE, so one poll of the
    # region is scheduled at a time).
    next_poll_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="region_unique_per_provider")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"


class AvailabilityZone(models.Model):
    """An isolated location inside a region (AWS only in the seeded catalog)."""

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="availability_zones")
    name = models.CharField(max_length=64)
    available = models.BooleanField(default=True)

    class Meta:
        ordering = ["region__provider__name", "region__name", "name"]
        constraints = [models.UniqueConstraint(fields=["region", "name"], name="az_unique_per_region")]

    def __str__(self) -> str:
        return f"{self.region}/{self.name}"


class NodeType(models.Model):
    """An instance size a provider offers in some of its regions."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="node_types")
    name = models.CharField(max_length=64)
    label = models.CharField(max_length=128)
    available = models.BooleanField(default=True)
    cpu = models.PositiveSmallIntegerField(default=1)
    memory = models.PositiveIntegerField(default=1024, help_text="Memory in MB")
    disk = models.PositiveIntegerField(default=20, help_text="Local disk in GB")
    regions = models.ManyToManyField(Region, related_name="node_types", blank=True)
    availability_zones = models.ManyToManyField(AvailabilityZone, related_name="node_types", blank=True)
    # The provider's list prices where its API gives them (DigitalOcean does; AWS's EC2 API does not).
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    price_hourly = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    # A name Tutum's 2015 catalog used ("1gb"): still valid in URIs and for new clusters, created at the provider as
    # today's equivalent size (`provider_node_type`).
    alias_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="aliases", editable=False
    )
    # When the catalog sync last saw the type at the provider (null for seeded rows never synced).
    synced_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="nodetype_unique_per_provider")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"

    @property
    def provider_node_type(self) -> str:
        """The size name sent to the provider: the current type a legacy alias stands for, else the name."""
        return self.alias_of.name if self.alias_of_id else self.name


class CloudAccount(models.Model):
    """A user's own account at a cloud provider; the engine creates the user's nodes with it.

    `secret` is a Fernet token (nodeclusters.services.secrets) of the JSON credentials, never the clear text.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cloud_accounts")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="accounts")
    kind = models.CharField(max_length=16, choices=CredentialKind.choices)
    label = models.CharField(max_length=128, blank=True)
    secret = models.TextField(editable=False)
    # The last four characters of the token or access key id, to tell accounts apart without showing them.
    hint = models.CharField(max_length=8, blank=True)
    # What the provider said about the account when it was last verified (e.g. the droplet limit, the account id).
    limits = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "provider__name"]
        constraints = [models.UniqueConstraint(fields=["owner", "provider"], name="cloudaccount_one_per_provider")]

    def __str__(self) -> str:
        return f"{self.owner} at {self.provider.name} (…{self.hint})"


class NodeCluster(models.Model):
    """A user's group of nodes of one node type in one region; `target_num_nodes` is the desired state."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="node_clusters")
    name = models.CharField(max_length=128)
    nickname = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=32, choices=NodeClusterState.choices, default=NodeClusterState.INIT)
    node_type = models.ForeignKey(NodeType, on_delete=models.PROTECT, related_name="node_clusters")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="node_clusters")
    disk = models.PositiveIntegerField(default=60)
    target_num_nodes = models.PositiveIntegerField(default=1)
    tags = models.JSONField(default=list, blank=True)
    provider_options = models.JSONField(default=dict, blank=True)
    # Exact control of scaling: which nodes a scale-down removes first, and the bounds a target must stay in.
    scale_in_policy = models.CharField(max_length=16, choices=ScaleInPolicy.choices, default=ScaleInPolicy.NEWEST_FIRST)
    min_num_nodes = models.PositiveIntegerField(null=True, blank=True)
    max_num_nodes = models.PositiveIntegerField(null=True, blank=True)
    # Self-repair: a node Unreachable longer than this (seconds) or whose instance is gone is replaced, at most
    # `max_repairs_per_hour` times an hour, and not at all while more than `max_unhealthy_percent` of the nodes are
    # unhealthy (an outage at the provider must not start a replacement storm).
    unhealthy_timeout = models.PositiveIntegerField(default=600)
    max_unhealthy_percent = models.PositiveSmallIntegerField(default=40)
    max_repairs_per_hour = models.PositiveSmallIntegerField(default=3)

    #: The fields above beyond Tutum's, which the owner sets on create and PATCH.
    CONTROL_FIELDS = (
        "scale_in_policy",
        "min_num_nodes",
        "max_num_nodes",
        "unhealthy_timeout",
        "max_unhealthy_percent",
        "max_repairs_per_hour",
    )
    # The latest action that set the desired state; the engine reports progress on it and supersedes the
    # previous one when a newer request arrives.
    current_action = models.ForeignKey("Action", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deployed_datetime = models.DateTimeField(null=True, blank=True)
    destroyed_datetime = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "uuid"]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.uuid})"


class Node(models.Model):
    """One cloud instance of a node cluster. The row is written before the provider is asked for it."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of their own: the (owner, -created_at) and (node_cluster, state) indexes below lead with them. Every
    # node row written (a fleet writes a thousand, and rewrites each as it gets its instance and lands) pays for
    # each of the table's indexes, so it has none that another one covers.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="nodes", db_index=False)
    node_cluster = models.ForeignKey(
        NodeCluster, on_delete=models.CASCADE, related_name="nodes", null=True, blank=True, db_index=False
    )
    node_type = models.ForeignKey(NodeType, on_delete=models.PROTECT, related_name="nodes")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="nodes")
    availability_zone = models.ForeignKey(
        AvailabilityZone, on_delete=models.PROTECT, related_name="nodes", null=True, blank=True
    )
    state = models.CharField(max_length=32, choices=NodeState.choices, default=NodeState.DEPLOYING)
    nickname = models.CharField(max_length=255, blank=True)
    tags = models.JSONField(default=list, blank=True)
    external_fqdn = models.CharField(max_length=255, blank=True)
    public_ip = models.GenericIPAddressField(null=True, blank=True)
    instance_id = models.CharField(max_length=128, blank=True)  # indexed below (one index, no LIKE index beside it)
    cpu = models.PositiveSmallIntegerField(default=0)
    memory = models.PositiveIntegerField(default=0)
    disk = models.PositiveIntegerField(default=0)
    docker_version = models.CharField(max_length=32, blank=True)
    docker_execdriver = models.CharField(max_length=32, blank=True)
    docker_graphdriver = models.CharField(max_length=32, blank=True)
    current_num_containers = models.PositiveIntegerField(default=0)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_metric = models.JSONField(default=dict, blank=True)
    tunnel = models.CharField(max_length=255, null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    failure_reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, blank=True)
    # A node created by self-repair names the node it replaces.
    replaces = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Deploy attempts that may have created an instance: counted as the deploy step takes the node while it has
    # no instance id yet. At 1 the step is the first, so no instance can carry the node's tag and it skips
    # asking the provider for one an earlier attempt made.
    attempts = models.PositiveSmallIntegerField(default=0)
    # A short lease taken by the one engine task allowed to call the provider for this node; it expires on
    # its own, so a task killed with its worker blocks nobody for longer than the lease.
    lease_token = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # When the engine last scheduled or did work on this node; a node in transit not touched for a while is
    # stuck (its task was lost) and the sweep schedules it again.
    engine_touched_at = models.DateTimeField(null=True, blank=True)
    # Instances a step created after another task had claimed the node (its lease had expired): never recorded as
    # the node's instance, they are adopted or destroyed by the next holder of the lease, so none lives on as a twin.
    stray_instance_ids = models.JSONField(default=list, blank=True)
    # Health checks: the sweep probes the nodes due (`next_probe_at`) that were probed longest ago, a bounded
    # number at a time, so nodes that never answer cannot starve the others; those back off exponentially.
    last_probed_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True, db_index=True)
    failed_probes = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    deployed_datetime = models.DateTimeField(null=True, blank=True)
    destroyed_datetime = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "uuid"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["node_cluster", "state"]),
            models.Index(fields=["state"]),
            models.Index(fields=["instance_id"]),
        ]

    def __str__(self) -> str:
        return str(self.uuid)


class Action(models.Model):
    """The audit record of one API call (or engine operation) and, for asynchronous work, its progress."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=64)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=512, blank=True)
    body = models.TextField(blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    location = models.CharField(max_length=128, blank=True)
    object_uri = models.CharField(max_length=255)
    node_cluster = models.ForeignKey(
        NodeCluster, on_delete=models.CASCADE, related_name="actions", null=True, blank=True
    )
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="actions", null=True, blank=True)
    state = models.CharField(max_length=16, choices=ActionState.choices, default=ActionState.IN_PROGRESS)
    start_date = models.DateTimeField()
    end_date = models.DateTimeField(null=True, blank=True)
    is_user_action = models.BooleanField(default=True)
    can_be_canceled = models.BooleanField(default=False)
    can_be_retried = models.BooleanField(default=False)
    # For actions that set a cluster's desired size: the size asked for, so a retry can ask for it again.
    target_num_nodes = models.PositiveIntegerField(null=True, blank=True)
    # Why a failed action failed (one of ReasonCode), blank otherwise.
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, blank=True)

    class Meta:
        ordering = ["-start_date", "uuid"]
        indexes = [
            models.Index(fields=["owner", "-start_date"]),
            models.Index(fields=["object_uri"]),
            models.Index(fields=["state"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_uri} ({self.state})"

    @property
    def logs(self) -> str:
        """The log as one text, a timestamped line per step (uses prefetched lines when there are some)."""
        return "".join(line.render() for line in self.log_lines.all())


class ActionLogLine(models.Model):
    """One line of an action's log. Lines are appended rows: a growing text column would be rewritten whole for
    every line, which a 200-node deploy writing three lines per node turns into megabytes of churn."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="log_lines")
    created_at = models.DateTimeField(default=timezone.now)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        return f"{self.created_at.astimezone(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {self.message}\n"


class ActionStep(models.Model):
    """One node's step within an action (create, boot, terminate, repair, upgrade): the action's `steps`."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="steps")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=16, choices=StepKind.choices)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.IN_PROGRESS)
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, blank=True)
    message = models.TextField(blank=True)
    start_date = models.DateTimeField(default=timezone.now, null=True, blank=True)  # null while `Pending`
    end_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Found by node (a node has a handful of steps) or by action, through the two foreign keys' own indexes.
        # No index covers `state`, `start_date` or `end_date`, so moving a step on is an update PostgreSQL can make
        # without touching an index (a fleet's deploy steps move two steps per node).

    def __str__(self) -> str:
        return f"{self.step} {self.node_id} ({self.state})"


class Event(models.Model):
    """One change of a user's node cluster, node or action: the Stream API's outbox.

    Written by the services in the same transaction as the change, so a rolled-back request emits nothing and a
    committed change is never lost. `sequence` is the cursor clients see and resume from: the stream's sequencer
    assigns it after commit, in the order rows become visible, because ids are drawn at insert time and two
    transactions can commit in the other order (a reader resuming from a higher id would miss the lower one).
    """

    sequence = models.BigIntegerField(null=True, blank=True, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=16, choices=EventType.choices)
    action = models.CharField(max_length=16, choices=EventAction.choices)
    object_uuid = models.UUIDField()
    resource_uri = models.CharField(max_length=255)
    state = models.CharField(max_length=32, blank=True)
    parents = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            # The sequencer's queue: only rows still waiting for their sequence are in it.
            models.Index(fields=["id"], condition=Q(sequence__isnull=True), name="event_unsequenced"),
            models.Index(fields=["owner", "sequence"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.type} {self.action} {self.resource_uri} ({self.state})"


class ApiKey(models.Model):
    """An API key: a short lookup prefix plus a SHA-256 digest; the key itself is shown once and never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    label = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [models.CheckConstraint(condition=~Q(prefix=""), name="apikey_prefix_not_empty")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyKey(models.Model):
    """A write made with an `Idempotency-Key` header and the answer it got, replayed for a repeat within 24 h."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    # Null while the first request is still running.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotencykey_unique_per_owner")]

    def __str__(self) -> str:
        return f"{self.owner}: {self.key}"


class Webhook(models.Model):
    """A user's URL that gets every event of their objects (the Stream API's events), signed with `secret`."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2048)
    # Event types delivered (EventType values); empty means all.
    types = models.JSONField(default=list, blank=True)
    # Fernet token of the signing secret (it must be read back to sign, so it is encrypted, not hashed).
    secret = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    # The last event (by sequence) turned into deliveries for this webhook.
    cursor = models.BigIntegerField(default=0)
    # Since when every delivery attempt has failed (null while deliveries succeed); after
    # WEBHOOK_GIVE_UP_SECONDS of it the webhook is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "uuid"]

    def __str__(self) -> str:
        return f"{self.url} ({self.uuid})"


class WebhookDelivery(models.Model):
    """One event to POST to one webhook, retried with backoff; delivered in order per object."""

    uuid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # The event's id as the Stream API gives it (its sequence), and the object it is about (ordering per object).
    event_id = models.BigIntegerField()
    object_uuid = models.UUIDField()
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=WebhookDeliveryState.choices, default=WebhookDeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-event_id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event_id"], name="webhookdelivery_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["webhook", "object_uuid", "event_id"]),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} to {self.webhook_id} ({self.state})"
