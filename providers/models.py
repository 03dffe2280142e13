"""The simulated cloud's instances, kept in the database so every web and worker process sees one cloud."""

from django.db import models
from django.db.models import Q


class SimulatedInstance(models.Model):
    """One instance of the simulated cloud.

    The row is the whole truth about the instance: its state is derived from the timestamps and the `failed`
    flag at read time (pending until `ready_at`, running after, terminated once `terminated_at` is set), so no
    process has to sleep or tick a clock for instances to boot. Terminated rows are kept so `get_node` can
    still answer "terminated" for an id it once handed out, as real clouds do for a while.
    """

    instance_id = models.CharField(max_length=32, unique=True)
    # Each catalog provider served by the simulator gets its own cloud: an "aws" instance is invisible to the
    # "digitalocean" driver, as it would be for real.
    provider_name = models.CharField(max_length=64, db_index=True)
    # The simulated account that created the instance: a fingerprint of the account's token, "" for the shared
    # (server-wide) account. An account sees only its own instances, as two real cloud accounts would.
    account = models.CharField(max_length=64, blank=True, default="")
    region = models.CharField(max_length=64)
    availability_zone = models.CharField(max_length=64, blank=True, default="")
    node_type = models.CharField(max_length=64)
    disk_gb = models.PositiveIntegerField()
    node_uuid = models.CharField(max_length=64, db_index=True)
    cluster_uuid = models.CharField(max_length=64, blank=True, default="")
    owner_tag = models.CharField(max_length=255, db_index=True)
    tags = models.JSONField(default=dict, blank=True)
    public_ip = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    docker_version = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField()
    ready_at = models.DateTimeField()
    failed = models.BooleanField(default=False)
    terminated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # The database, not a read-then-write race, guarantees one live instance per node: two workers
            # creating the same node at once get one instance, the loser reads the winner's.
            models.UniqueConstraint(
                fields=["provider_name", "node_uuid"],
                condition=Q(terminated_at__isnull=True),
                name="providers_one_live_simulated_instance_per_node",
            ),
        ]
        indexes = [
            models.Index(fields=["provider_name", "account", "region", "owner_tag"], name="providers_sim_account_idx")
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.provider_name}/{self.region}, node {self.node_uuid})"
