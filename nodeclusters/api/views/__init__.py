"""API views: declarative reads; each write parses input, calls one service and renders the result."""

from .actions import ActionViewSet
from .base import ACTION_HEADER, TutumAutoSchema, TutumViewSetMixin
from .catalog import AuthView, AvailabilityZoneViewSet, NodeTypeViewSet, ProviderViewSet, RegionViewSet
from .nodeclusters import NodeClusterViewSet
from .nodes import NodeViewSet

__all__ = [
    "ACTION_HEADER",
    "ActionViewSet",
    "AuthView",
    "AvailabilityZoneViewSet",
    "NodeClusterViewSet",
    "NodeTypeViewSet",
    "NodeViewSet",
    "ProviderViewSet",
    "RegionViewSet",
    "TutumAutoSchema",
    "TutumViewSetMixin",
]
