"""`Provider`: a cloud provider of the catalog (`digitalocean`, `aws`, `local`)."""

from __future__ import annotations

from .base import Immutable


class Provider(Immutable):
    """Represents a Tutum Provider object."""

    endpoint = "/provider"

    name: str
    label: str
    regions: list[str]
    available: bool
    resource_uri: str

    @classmethod
    def _pk_key(cls) -> str:
        return "name"

    def delete(self):
        raise AttributeError("'delete' is not supported in 'Provider'")

    def save(self):
        raise AttributeError("'save' is not supported in 'Provider'")
