"""`Region`: a region of the catalog, fetched by `provider/...name` or listed."""

from __future__ import annotations

from .base import Immutable


class Region(Immutable):
    """Represents a Tutum Region object."""

    endpoint = "/region"

    name: str
    label: str
    resource_uri: str
    provider: str
    node_types: list[str]
    availability_zones: list[str]
    available: bool

    @classmethod
    def _pk_key(cls) -> str:
        return "name"

    @property
    def pk(self) -> str:
        """What `fetch()` takes: the resource URI's path after `/region/`."""
        return self.resource_uri.strip("/").split("/region/", 1)[-1] if getattr(self, "resource_uri", None) else None
