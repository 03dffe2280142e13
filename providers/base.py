"""The driver interface every cloud provider implements, with provider-neutral results and error types.

No Django imports here: a driver is plain Python that the engine calls outside database transactions.
"""

from __future__ import annotations

import enum
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal

from providers.errors import (
    AuthFailed,
    CapacityUnavailable,
    InvalidProviderRequest,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    TransientProviderError,
)
from providers.instrumentation import OPERATIONS, instrument

__all__ = [
    "AccountInfo",
    "AuthFailed",
    "CapacityUnavailable",
    "Catalog",
    "CatalogNodeType",
    "CatalogRegion",
    "Instance",
    "InstanceState",
    "InvalidProviderRequest",
    "NodeDriver",
    "NodeSpec",
    "PermanentProviderError",
    "ProviderError",
    "Quota",
    "QuotaExceeded",
    "RateLimited",
    "TransientProviderError",
    "credentials_fingerprint",
]

# Tag keys written on every instance we create. The node uuid tag is how a retried create finds the instance
# an earlier attempt made instead of creating a twin; the owner tag is how the leak sweep tells our instances
# from anyone else's in the same account.
NODE_UUID_TAG = "tutum-node-uuid"
CLUSTER_UUID_TAG = "tutum-cluster-uuid"
OWNER_TAG = "tutum-managed-by"


def credentials_fingerprint(credentials: dict | None) -> str:
    """A SHA-256 hex digest naming one account's credentials without holding them; "" for the server's own.

    Computed over the canonical JSON of the credentials, so the same credentials always give the same fingerprint.
    """
    if credentials is None:
        return ""
    canonical = json.dumps(credentials, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class InstanceState(enum.StrEnum):
    """The provider-neutral lifecycle of a cloud instance; each driver maps its provider's states onto it."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NodeSpec:
    """What the engine asks a driver to create: one instance for one `Node` row."""

    node_uuid: str
    cluster_uuid: str
    region: str
    node_type: str
    disk_gb: int
    availability_zone: str | None = None
    provider_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """A cloud instance as a driver sees it. `extra` keeps provider-specific details for logs and the admin."""

    instance_id: str
    state: InstanceState
    region: str
    node_uuid: str | None = None
    cluster_uuid: str | None = None
    public_ip: str | None = None
    availability_zone: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def is_gone(self) -> bool:
        return self.state in (InstanceState.TERMINATING, InstanceState.TERMINATED)


@dataclass(frozen=True)
class CatalogRegion:
    """A region as the provider lists it; `zones` are its availability zones (AWS), empty where there are none."""

    name: str
    label: str
    available: bool = True
    zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogNodeType:
    """An instance size as the provider lists it, with the regions (and zones) that offer it."""

    name: str
    label: str
    cpu: int
    memory_mb: int
    disk_gb: int
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    price_monthly: Decimal | None = None
    price_hourly: Decimal | None = None
    available: bool = True


@dataclass(frozen=True)
class Catalog:
    """Everything `fetch_catalog` found: what the catalog sync writes into the database."""

    regions: tuple[CatalogRegion, ...]
    node_types: tuple[CatalogNodeType, ...]


@dataclass(frozen=True)
class AccountInfo:
    """What one cheap read call says about an account: who it is and its limits (e.g. {"droplet_limit": 25})."""

    account_id: str
    label: str = ""
    limits: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    """An account's capacity for new nodes in a region, in the provider's unit: "droplets" (each node counts one)
    or "vcpus" (each node counts its type's vCPUs). `limit` is None when the provider does not say."""

    unit: str
    limit: int | None
    in_use: int

    def cost(self, *, nodes: int, cpu: int) -> int:
        """What `nodes` new nodes of a type with `cpu` vCPUs use of this quota."""
        return nodes * cpu if self.unit == "vcpus" else nodes


class NodeDriver(ABC):
    """One cloud provider. Methods are verb-noun, take plain values and return plain dataclasses.

    Every method may raise only `TransientProviderError` or `PermanentProviderError`.
    """

    #: The catalog's provider name this driver serves, e.g. "aws".
    name: str = ""
    #: Whether `upgrade_docker` does anything on this provider.
    supports_docker_upgrade: bool = False

    def __init_subclass__(cls, **kwargs):
        """Every driver's provider-facing methods are counted and timed (see providers.instrumentation)."""
        super().__init_subclass__(**kwargs)
        for operation in OPERATIONS:
            method = cls.__dict__.get(operation)
            if callable(method) and not getattr(method, "__instrumented__", False):
                setattr(cls, operation, instrument(method))

    def __init__(self, *, owner_tag: str = "tutum-api", provider_name: str | None = None) -> None:
        self.owner_tag = owner_tag
        if provider_name:
            self.name = provider_name

    @abstractmethod
    def create_node(self, spec: NodeSpec) -> Instance:
        """Start one instance tagged with the node's uuid, its cluster's uuid and our owner tag.

        Callers look the node up with `find_node` first; a driver still never creates a second instance
        for a node uuid it can see.
        """

    @abstractmethod
    def find_node(self, *, node_uuid: str, region: str) -> Instance | None:
        """The live (not terminated) instance tagged with this node uuid, or None."""

    @abstractmethod
    def get_node(self, *, instance_id: str, region: str) -> Instance | None:
        """The instance with this id, or None if the provider no longer knows it."""

    @abstractmethod
    def destroy_node(self, *, instance_id: str, region: str) -> None:
        """Terminate the instance. Destroying an instance that is already gone is not an error."""

    @abstractmethod
    def list_nodes(self, *, region: str) -> list[Instance]:
        """Every live instance in the region that carries our owner tag."""

    def get_nodes(self, *, instance_ids: list[str], region: str) -> dict[str, Instance]:
        """The instances with these ids that the provider still knows, by id (terminated ones too).

        What a poll asks for the instances its listing lacked (listings can lag behind creates). This default asks
        for each in turn; drivers whose provider can describe many instances in one call do so.
        """
        found = {}
        for instance_id in instance_ids:
            instance = self.get_node(instance_id=instance_id, region=region)
            if instance is not None:
                found[instance_id] = instance
        return found

    def check_health(self, *, instance_id: str, region: str) -> bool:
        """Whether the instance is running and reachable. Providers without a probe use the instance state."""
        instance = self.get_node(instance_id=instance_id, region=region)
        return instance is not None and instance.state == InstanceState.RUNNING

    def upgrade_docker(self, *, instance_id: str, region: str) -> None:
        """Upgrade the Docker engine on the instance, where the provider supports it."""
        raise PermanentProviderError(f"Docker upgrade is not supported on provider {self.name!r}")

    # --- accounts and the catalog (issue "today's clouds"): optional, the engine works without them --------------

    def verify_account(self) -> AccountInfo:
        """Check the driver's credentials with one cheap read call; AuthFailed if the provider refuses them."""
        raise PermanentProviderError(f"Provider {self.name!r} cannot verify accounts")

    def fetch_catalog(self) -> Catalog:
        """The provider's regions, zones and instance sizes today, with prices where its API gives them."""
        raise PermanentProviderError(f"Provider {self.name!r} cannot list its catalog")

    def get_quota(self, *, region: str) -> Quota | None:
        """The account's limit for new nodes in the region and how much of it is used; None if unreadable."""
        return None

    def tags_for(self, spec: NodeSpec) -> dict[str, str]:
        """The tags every created instance carries."""
        return {NODE_UUID_TAG: spec.node_uuid, CLUSTER_UUID_TAG: spec.cluster_uuid, OWNER_TAG: self.owner_tag}
