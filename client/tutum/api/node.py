"""`Node`: one machine of a cluster; retag, upgrade Docker, health-check, terminate."""

from __future__ import annotations

from typing import Any

from .base import Mutable, Taggable
from .types import NodeState, Tags, Timestamp


class Node(Mutable, Taggable):
    """Represents a Tutum Node object."""

    endpoint = "/node"
    state_type = NodeState
    event_type = "node"

    uuid: str
    resource_uri: str
    state: NodeState
    node_cluster: str | None
    node_type: str
    region: str
    availability_zone: str | None
    external_fqdn: str
    nickname: str
    public_ip: str | None
    docker_version: str
    docker_execdriver: str
    docker_graphdriver: str
    cpu: int
    memory: int
    disk: int
    current_num_containers: int
    last_metric: dict[str, Any]
    last_seen: Timestamp | None
    deployed_datetime: Timestamp | None
    destroyed_datetime: Timestamp | None
    tunnel: str | None
    tags: Tags

    def save(self) -> bool:
        if not self._detail_uri:
            raise AttributeError("Adding a new node to Tutum is not supported via 'save' method")
        return super().save()

    def upgrade_docker(self) -> bool:
        """Upgrade Docker on the node (Deployed -> Upgrading -> Deployed)."""
        return self._perform_action("docker-upgrade")

    def health_check(self) -> bool:
        """Check the node now: Deployed if it answers, Unreachable otherwise."""
        return self._perform_action("health-check")
