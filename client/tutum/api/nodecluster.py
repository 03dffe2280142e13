"""`NodeCluster`: create, deploy, scale (`target_num_nodes` then `save()`), retag, upgrade Docker, terminate."""

from __future__ import annotations

from typing import Any, Self

from .base import Mutable, Taggable
from .noderegion import Region
from .nodetype import NodeType
from .types import NodeClusterState, Tags, Timestamp


class NodeCluster(Mutable, Taggable):
    """Represents a Tutum NodeCluster object."""

    endpoint = "/nodecluster"
    state_type = NodeClusterState
    event_type = "nodecluster"

    uuid: str
    resource_uri: str
    name: str
    nickname: str
    state: NodeClusterState
    node_type: str
    region: str
    disk: int | None
    nodes: list[str]
    actions: list[str]
    target_num_nodes: int
    current_num_nodes: int
    deployed_datetime: Timestamp | None
    destroyed_datetime: Timestamp | None
    tags: Tags
    provider_options: dict[str, Any]

    @classmethod
    def create(cls, **kwargs) -> Self:
        """A new cluster (sent by `save()`); `node_type` and `region` may be NodeType and Region objects."""
        for key, value in kwargs.items():
            if key in ("node_type", "region") and isinstance(value, NodeType | Region):
                kwargs[key] = getattr(value, "resource_uri", "")
        return cls(**kwargs)

    def deploy(self, tag: str | None = None) -> bool:
        """Deploy the cluster (Init -> Deploying -> Deployed)."""
        return self._perform_action("deploy")

    def upgrade_docker(self) -> bool:
        """Upgrade Docker on every node of the cluster."""
        return self._perform_action("docker-upgrade")

    def scale(self, target_num_nodes: int) -> bool:
        """Set `target_num_nodes` and save: the engine creates or terminates the difference."""
        self.target_num_nodes = target_num_nodes
        return self.save()

    def node_list(self, **filters):
        """The cluster's nodes (Terminated ones included, as the API lists them)."""
        from .node import Node

        return Node.list(node_cluster=self.resource_uri, **filters)
