"""Cloud doubles for engine tests: an in-memory provider that, like DigitalOcean, has no idempotency token."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from providers.base import Instance, InstanceState, NodeDriver, NodeSpec, TransientProviderError


class TwinningCloud(NodeDriver):
    """Every create makes a new instance, even for a node uuid that has one: asked twice, it makes a twin.

    Instances run as soon as they exist (unless `create_state` says otherwise). `hold_create` makes the next create
    wait inside the call (the provider taking its time) while the test runs `while_held` (e.g. lets the lease expire
    and runs a second step), before or after the instance exists at the provider; `fail_creates` makes creates fail
    transiently meanwhile.
    """

    name = "digitalocean"
    supports_docker_upgrade = True

    def __init__(self) -> None:
        super().__init__(owner_tag="tutum-api", provider_name="digitalocean")
        self.instances: dict[str, Instance] = {}
        self.destroyed: list[str] = []
        self.fail_creates = False
        self.create_state = InstanceState.RUNNING
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._held: tuple[Callable[[], None], bool] | None = None
        self.on_upgrade: Callable[[], None] | None = None
        self.on_destroy: Callable[[], None] | None = None

    def hold_create(self, while_held: Callable[[], None], *, after_it_exists: bool = False) -> None:
        self._held = (while_held, after_it_exists)

    def live(self) -> list[str]:
        return sorted(self.instances)

    def create_node(self, spec: NodeSpec) -> Instance:
        held, self._held = self._held, None
        if held and not held[1]:
            held[0]()  # the answer is slow: the instance does not exist yet
        if self.fail_creates:
            raise TransientProviderError("503 from the provider")
        with self._lock:
            instance = Instance(
                instance_id=f"droplet-{next(self._ids)}",
                state=self.create_state,
                region=spec.region,
                node_uuid=spec.node_uuid,
                cluster_uuid=spec.cluster_uuid,
                public_ip="198.18.0.20",
            )
            self.instances[instance.instance_id] = instance
        if held and held[1]:
            held[0]()  # the instance exists, but its id has not reached the caller yet
        return instance

    def find_node(self, *, node_uuid: str, region: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.node_uuid == node_uuid and i.region == region), None)

    def get_node(self, *, instance_id: str, region: str) -> Instance | None:
        return self.instances.get(instance_id)

    def destroy_node(self, *, instance_id: str, region: str) -> None:
        if self.on_destroy:
            hook, self.on_destroy = self.on_destroy, None
            hook()
        with self._lock:
            if self.instances.pop(instance_id, None) is not None:
                self.destroyed.append(instance_id)

    def list_nodes(self, *, region: str) -> list[Instance]:
        return [instance for instance in self.instances.values() if instance.region == region]

    def upgrade_docker(self, *, instance_id: str, region: str) -> None:
        if self.on_upgrade:
            hook, self.on_upgrade = self.on_upgrade, None
            hook()
