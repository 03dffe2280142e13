"""`NodeType`: a node type of the catalog, fetched by `provider/...name` or listed."""

from __future__ import annotations

from .base import Immutable


class NodeType(Immutable):
    """Represents a Tutum NodeType object."""

    endpoint = "/nodetype"

    name: str
    label: str
    resource_uri: str
    provider: str
    regions: list[str]
    availability_zones: list[str]
    available: bool

    @classmethod
    def _pk_key(cls) -> str:
        return "name"

    @property
    def pk(self) -> str:
        """What `fetch()` takes: the resource URI's path after `/nodetype/`."""
        return self.resource_uri.strip("/").split("/nodetype/", 1)[-1] if getattr(self, "resource_uri", None) else None
