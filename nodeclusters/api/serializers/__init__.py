"""Serializers: input ones validate requests for the services; output ones render Tutum's exact representations.

Output serializers declare their fields (for the schema) but build the dict directly: a list page renders
25 clusters with dozens of URIs each, and per-field serializer machinery would dominate its cost.
"""

from ..fields import MAX_NODES_PER_CLUSTER
from .answers import (
    ActionLogLineSerializer,
    ActionLogSerializer,
    DryRunPlanSerializer,
    DryRunPreflightSerializer,
    DryRunSerializer,
    PreflightReasonSerializer,
)
from .catalog import AvailabilityZoneSerializer, NodeTypeSerializer, ProviderSerializer, RegionSerializer
from .inputs import (
    ActionLogQuerySerializer,
    ClusterControlSerializer,
    DryRunQuerySerializer,
    NodeClusterCreateSerializer,
    NodeClusterUpdateSerializer,
    NodeUpdateSerializer,
    StrictSerializer,
)
from .resources import ActionSerializer, ActionStepSerializer, NodeClusterSerializer, NodeSerializer

__all__ = [
    "MAX_NODES_PER_CLUSTER",
    "ActionLogLineSerializer",
    "ActionLogQuerySerializer",
    "ActionLogSerializer",
    "ActionSerializer",
    "ActionStepSerializer",
    "AvailabilityZoneSerializer",
    "ClusterControlSerializer",
    "DryRunPlanSerializer",
    "DryRunPreflightSerializer",
    "DryRunQuerySerializer",
    "DryRunSerializer",
    "NodeClusterCreateSerializer",
    "NodeClusterSerializer",
    "NodeClusterUpdateSerializer",
    "NodeSerializer",
    "NodeTypeSerializer",
    "NodeUpdateSerializer",
    "PreflightReasonSerializer",
    "ProviderSerializer",
    "RegionSerializer",
    "StrictSerializer",
]
