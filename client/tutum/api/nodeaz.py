"""`AZ`: a availability zone of the catalog, fetched by `provider/...name` or listed."""

from __future__ import annotations

from .base import Immutable


class AZ(Immutable):
    """Represents a Tutum AZ object."""

    endpoint = "/az"

    name: str
    label: str
    resource_uri: str
    region: str
    available: bool

    @classmethod
    def _pk_key(cls) -> str:
        return "name"

    @property
    def pk(self) -> str:
        """What `fetch()` takes: the resource URI's path after `/az/`."""
        return self.resource_uri.strip("/").split("/az/", 1)[-1] if getattr(self, "resource_uri", None) else None
