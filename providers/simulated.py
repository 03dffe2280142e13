"""A simulated cloud whose instances live in the database, so the API runs end to end without a cloud account.

Time, not sleeping, drives it: an instance is pending until its `ready_at` and running after, whichever process
asks. Failure injection is deterministic for a given seed so a failing run can be replayed. Accounts are simulated
too: a token names one (tokens starting with "invalid" are refused), an account sees only its own instances, and a
node limit per account stands in for DigitalOcean's droplet limit or AWS's vCPU quota.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from providers import catalog_data
from providers.base import (
    AccountInfo,
    AuthFailed,
    Catalog,
    CatalogNodeType,
    CatalogRegion,
    Instance,
    InstanceState,
    InvalidProviderRequest,
    NodeDriver,
    NodeSpec,
    PermanentProviderError,
    Quota,
    QuotaExceeded,
    TransientProviderError,
    credentials_fingerprint,
)
from providers.models import SimulatedInstance

# Public addresses come from 198.18.0.0/15, the block reserved for benchmarking, so a simulated address can never
# be mistaken for (or reach) a real host.
SIMULATED_ADDRESS_BLOCK = ipaddress.IPv4Network("198.18.0.0/15")


#: What stands for an account's token, by the credentials each real provider takes (DigitalOcean; AWS keys or role).
SIMULATED_CREDENTIAL_FIELDS = ("token", "access_key_id", "role_arn")


class SimulatedDriver(NodeDriver):
    """The simulated cloud. One instance of this driver per catalog provider name, each seeing only its own rows."""

    name = "local"
    supports_docker_upgrade = True

    #: The Docker engine a fresh instance runs, and the one `upgrade_docker` moves it to.
    INITIAL_DOCKER_VERSION = "1.8.3"
    LATEST_DOCKER_VERSION = "1.9.1"

    def __init__(
        self,
        *,
        owner_tag: str = "tutum-api",
        provider_name: str | None = None,
        credentials: dict | None = None,
        boot_seconds: float = 2.0,
        failure_rate: float = 0.0,
        seed: str | int | None = None,
        node_limit: int = 0,
    ) -> None:
        """Configure boot time, the share of creates that fail, and the seed that makes those failures repeatable.

        `credentials` name an account, None the shared one: a token, or the fields a real provider of the name takes
        (an AWS access key or role), whose first value stands for the token; `node_limit` caps each account's live
        instances (0: no limit).
        """
        super().__init__(owner_tag=owner_tag, provider_name=provider_name)
        token = None
        if credentials is not None:
            token = next((credentials.get(name) for name in SIMULATED_CREDENTIAL_FIELDS if name in credentials), None)
            if not isinstance(token, str):
                raise InvalidProviderRequest(
                    'simulated: credentials must be {"token": ...}, {"access_key_id", "secret_access_key"} or '
                    '{"role_arn", "external_id"}'
                )
        if node_limit < 0:
            raise PermanentProviderError(f"simulated: node_limit must not be negative, got {node_limit}")
        self._token = token
        self.account = credentials_fingerprint(credentials)
        self.node_limit = int(node_limit)
        if boot_seconds < 0:
            raise PermanentProviderError(f"simulated: boot_seconds must not be negative, got {boot_seconds}")
        if not 0.0 <= failure_rate <= 1.0:
            raise PermanentProviderError(f"simulated: failure_rate must be between 0 and 1, got {failure_rate}")
        self.boot_seconds = float(boot_seconds)
        self.failure_rate = float(failure_rate)
        # Settings hand over "" when no seed is configured; that means "not seeded", not "seeded with ''".
        self.seed = None if seed is None or seed == "" else str(seed)

    def create_node(self, spec: NodeSpec) -> Instance:
        """Create the node's instance, or return the live one it already has.

        With probability `failure_rate` the instance is written half-made (failed, shown as stopped) and the call
        raises, the way a real boot failure leaves a tagged instance behind that the caller must find and destroy.
        """
        self._authenticate()
        now = timezone.now()
        self._check_node_limit(spec)
        try:
            with transaction.atomic():
                row = self._insert_row(spec, now)
            created = True
        except IntegrityError:
            # The node has a live instance already (an earlier or a concurrent create): the partial unique
            # constraint refused the twin, and that instance is the answer.
            row = self._live_rows().filter(node_uuid=spec.node_uuid).first()
            created = False
            if row is None:
                raise TransientProviderError(
                    f"simulated: concurrent create for node {spec.node_uuid} left no instance; retry"
                ) from None
        if row.failed and created:
            raise PermanentProviderError(
                f"simulated: instance {row.instance_id} failed to boot (node {spec.node_uuid}, "
                f"failure rate {self.failure_rate}, seed {self.seed!r})"
            )
        if row.failed:
            # Handing back a dead instance would hide the failure; the caller has to destroy it first.
            raise PermanentProviderError(
                f"simulated: instance {row.instance_id} for node {spec.node_uuid} failed to boot; "
                "destroy it before creating the node again"
            )
        return self._to_instance(row, now)

    def find_node(self, *, node_uuid: str, region: str) -> Instance | None:
        """The live instance tagged with this node uuid in the region, failed ones included."""
        self._authenticate()
        row = self._live_rows().filter(node_uuid=node_uuid, region=region, owner_tag=self.owner_tag).first()
        return self._to_instance(row, timezone.now()) if row is not None else None

    def get_node(self, *, instance_id: str, region: str) -> Instance | None:
        """The instance with this id, terminated ones included; None for ids this account was never handed."""
        self._authenticate()
        row = self._rows().filter(region=region, instance_id=instance_id).first()
        return self._to_instance(row, timezone.now()) if row is not None else None

    def get_nodes(self, *, instance_ids: list[str], region: str) -> dict[str, Instance]:
        """The instances with these ids, terminated ones included, in one query."""
        self._authenticate()
        now = timezone.now()
        rows = self._rows().filter(region=region, instance_id__in=instance_ids)
        return {row.instance_id: self._to_instance(row, now) for row in rows}

    def destroy_node(self, *, instance_id: str, region: str) -> None:
        """Terminate the instance at once; unknown and already terminated ids are left alone."""
        self._authenticate()
        self._live_rows().filter(region=region, instance_id=instance_id).update(terminated_at=timezone.now())

    def list_nodes(self, *, region: str) -> list[Instance]:
        """Every live instance in the region that carries our owner tag."""
        self._authenticate()
        now = timezone.now()
        rows = self._live_rows().filter(region=region, owner_tag=self.owner_tag)
        return [self._to_instance(row, now) for row in rows]

    def check_health(self, *, instance_id: str, region: str) -> bool:
        """Healthy means running and not failed; the simulator has no agent to probe."""
        self._authenticate()
        row = self._live_rows().filter(region=region, instance_id=instance_id).first()
        return row is not None and self._state_of(row, timezone.now()) == InstanceState.RUNNING

    def upgrade_docker(self, *, instance_id: str, region: str) -> None:
        """Move the instance to `LATEST_DOCKER_VERSION`; upgrading an up-to-date instance changes nothing."""
        self._authenticate()
        with transaction.atomic():
            row = self._live_rows().select_for_update().filter(region=region, instance_id=instance_id).first()
            if row is None:
                raise PermanentProviderError(f"simulated: no live instance {instance_id} in {region}")
            state = self._state_of(row, timezone.now())
            if state == InstanceState.PENDING:
                # It will be running shortly, so a later attempt can succeed.
                raise TransientProviderError(f"simulated: instance {instance_id} is still booting")
            if state != InstanceState.RUNNING:
                raise PermanentProviderError(f"simulated: instance {instance_id} is {state}, cannot upgrade Docker")
            if row.docker_version != self.LATEST_DOCKER_VERSION:
                row.docker_version = self.LATEST_DOCKER_VERSION
                row.save(update_fields=["docker_version"])

    def verify_account(self) -> AccountInfo:
        """Any token names an account except an empty one or one starting with "invalid", refused like a 401."""
        self._authenticate()
        limits = {"node_limit": self.node_limit} if self.node_limit else {}
        if self._token is None:
            return AccountInfo(account_id="shared", label=f"simulated {self.name} shared account", limits=limits)
        return AccountInfo(
            account_id=f"sim-{self.account[:12]}",
            label=f"simulated {self.name} account …{self._token[-4:]}",
            limits=limits,
        )

    def fetch_catalog(self) -> Catalog:
        """The catalog the real provider of this name lists today (DigitalOcean, AWS), or the seeded local one."""
        self._authenticate()
        if self.name == "digitalocean":
            return catalog_data.digitalocean_catalog()
        if self.name == "aws":
            return catalog_data.aws_catalog()
        if self.name == "local":
            return _local_catalog()
        raise InvalidProviderRequest(f"simulated: no catalog for provider {self.name!r} (digitalocean, aws, local)")

    def get_quota(self, *, region: str) -> Quota | None:
        """The account's live instances (in every region, as DigitalOcean counts droplets) against its node limit."""
        self._authenticate()
        return Quota(unit="instances", limit=self.node_limit or None, in_use=self._live_rows().count())

    def _authenticate(self) -> None:
        """Refuse every call made with a token the simulated cloud does not accept, as a real API answers 401."""
        if self._token is not None and (not self._token.strip() or self._token.startswith("invalid")):
            raise AuthFailed(f"simulated: {self.name} answered HTTP 401: Unauthorized: Unable to authenticate you")

    def _check_node_limit(self, spec: NodeSpec) -> None:
        """QuotaExceeded when a new instance would take the account past its node limit.

        A node that already has a live instance is not counted twice: its create returns that instance.
        """
        if not self.node_limit or self._live_rows().filter(node_uuid=spec.node_uuid).exists():
            return
        in_use = self._live_rows().count()
        if in_use >= self.node_limit:
            raise QuotaExceeded(
                f"simulated: creating this instance will exceed your instance limit ({in_use} of {self.node_limit} "
                "in use)"
            )

    def _rows(self):
        """This provider's instances created by this account, terminated ones included."""
        return SimulatedInstance.objects.filter(provider_name=self.name, account=self.account)

    def _live_rows(self):
        """This account's instances at this provider that have not been terminated."""
        return self._rows().filter(terminated_at__isnull=True)

    def _insert_row(self, spec: NodeSpec, now: datetime) -> SimulatedInstance:
        """Write the instance row, deciding here whether this boot fails."""
        instance_id = f"sim-{secrets.token_hex(6)}"
        return SimulatedInstance.objects.create(
            instance_id=instance_id,
            provider_name=self.name,
            account=self.account,
            region=spec.region,
            availability_zone=spec.availability_zone or "",
            node_type=spec.node_type,
            disk_gb=spec.disk_gb,
            node_uuid=spec.node_uuid,
            cluster_uuid=spec.cluster_uuid,
            owner_tag=self.owner_tag,
            tags=self.tags_for(spec),
            public_ip=self._public_ip_for(instance_id),
            docker_version=self.INITIAL_DOCKER_VERSION,
            created_at=now,
            ready_at=now + timedelta(seconds=self.boot_seconds),
            failed=self._draw(spec.node_uuid) < self.failure_rate,
        )

    def _draw(self, node_uuid: str) -> float:
        """A number in [0, 1) deciding whether this create fails.

        Seeded draws hash (seed, node uuid, attempt) so a run replays exactly; the attempt number (how many
        instances this node has had) gives a retried create a fresh draw instead of failing forever.
        """
        if self.seed is None:
            return random.random()
        attempt = SimulatedInstance.objects.filter(provider_name=self.name, node_uuid=node_uuid).count()
        digest = hashlib.sha256(f"{self.seed}:{node_uuid}:{attempt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    @staticmethod
    def _public_ip_for(instance_id: str) -> str:
        """A stable address inside the benchmarking block, derived from the instance id."""
        digest = hashlib.sha256(instance_id.encode()).digest()
        offset = int.from_bytes(digest[:4], "big") % (SIMULATED_ADDRESS_BLOCK.num_addresses - 2) + 1
        return str(SIMULATED_ADDRESS_BLOCK.network_address + offset)

    @staticmethod
    def _state_of(row: SimulatedInstance, now: datetime) -> InstanceState:
        """The instance's state at `now`, from its timestamps and failure flag."""
        if row.terminated_at is not None:
            return InstanceState.TERMINATED
        if row.failed:
            return InstanceState.STOPPED
        if now < row.ready_at:
            return InstanceState.PENDING
        return InstanceState.RUNNING

    def _to_instance(self, row: SimulatedInstance, now: datetime) -> Instance:
        """The provider-neutral view of a row."""
        state = self._state_of(row, now)
        return Instance(
            instance_id=row.instance_id,
            state=state,
            region=row.region,
            node_uuid=row.node_uuid,
            cluster_uuid=row.cluster_uuid or None,
            # Like a real cloud, a failed or terminated instance no longer holds a public address.
            public_ip=row.public_ip if state in (InstanceState.PENDING, InstanceState.RUNNING) else None,
            availability_zone=row.availability_zone or None,
            extra={
                "provider": row.provider_name,
                "node_type": row.node_type,
                "disk_gb": row.disk_gb,
                "tags": dict(row.tags),
                "docker_version": row.docker_version,
                "created_at": row.created_at.isoformat(),
                "ready_at": row.ready_at.isoformat(),
                "failed": row.failed,
                "terminated_at": row.terminated_at.isoformat() if row.terminated_at else None,
            },
        )


def _local_catalog() -> Catalog:
    """The seeded `local` provider's regions and types (nodeclusters.catalog), in the shape the drivers return."""
    from nodeclusters.catalog import LOCAL_REGIONS, LOCAL_TYPES

    regions = tuple(CatalogRegion(name=name, label=label) for name, label in LOCAL_REGIONS.items())
    node_types = tuple(
        CatalogNodeType(name=name, label=label, cpu=cpu, memory_mb=memory, disk_gb=disk, regions=tuple(LOCAL_REGIONS))
        for name, (label, cpu, memory, disk) in LOCAL_TYPES.items()
    )
    return Catalog(regions=regions, node_types=node_types)
