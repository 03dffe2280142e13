"""`/api/v1/node/`: the nodes of every cluster, renamed, checked, upgraded and terminated one at a time."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action as route

from nodeclusters import selectors, services
from nodeclusters.filtersets import NodeFilterSet

from .. import conditional, serializers
from ..conditional import if_match
from ..schema import FIRST_LISTED, errors, links
from .base import NODE_CLUSTER, NODE_ITSELF, TutumViewSetMixin, accepted, found, write_schema


@extend_schema_view(
    list=extend_schema(
        summary="List nodes",
        responses={
            200: found(serializers.NodeSerializer, follow=links("node", FIRST_LISTED, via="the first")),
            **errors(400),
        },
    ),
    retrieve=conditional.read_schema(
        summary="Get a node",
        responses={200: found(serializers.NodeSerializer, follow={**NODE_ITSELF, **NODE_CLUSTER}), **errors(404)},
    ),
    partial_update=write_schema(
        summary="Rename or retag a node",
        request=serializers.NodeUpdateSerializer,
        responses={
            200: accepted(serializers.NodeSerializer, "Changed", follow=NODE_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    destroy=write_schema(
        summary="Terminate a node (it stays listed, Terminating then Terminated)",
        responses={
            202: accepted(serializers.NodeSerializer, "Terminating", follow=NODE_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    health_check=write_schema(
        summary="Check that the node is reachable",
        request=None,
        responses={
            202: accepted(serializers.NodeSerializer, "Check started", follow=NODE_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    docker_upgrade=write_schema(
        summary="Upgrade Docker on the node",
        request=None,
        responses={
            202: accepted(serializers.NodeSerializer, "Upgrading", follow=NODE_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
)
class NodeViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/node/`: list, get, rename/tag (PATCH), terminate (DELETE), health-check, docker-upgrade."""

    serializer_class = serializers.NodeSerializer
    filterset_class = NodeFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.node_list(owner=self.request.user)

    @if_match("node")
    def partial_update(self, request, uuid=None):
        context = self.request_context()
        data = self.validated(serializers.NodeUpdateSerializer)
        node, action = services.node_update(node_uuid=uuid, owner=request.user, context=context, **data)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_200_OK)

    @if_match("node")
    def destroy(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_terminate(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="health-check")
    @if_match("node")
    def health_check(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_health_check(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="docker-upgrade")
    @if_match("node")
    def docker_upgrade(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_docker_upgrade(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)
