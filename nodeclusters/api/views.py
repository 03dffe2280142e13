"""API views: declarative reads; each write parses input, calls one service and renders the result."""

import json

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, status, viewsets
from rest_framework import serializers as drf_serializers
from rest_framework.decorators import action as route
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from nodeclusters import selectors, services
from nodeclusters.filtersets import (
    ActionFilterSet,
    AvailabilityZoneFilterSet,
    NodeClusterFilterSet,
    NodeFilterSet,
    NodeTypeFilterSet,
    ProviderFilterSet,
    RegionFilterSet,
)
from nodeclusters.models import Action

from . import serializers, uris
from .schema import errors

ACTION_HEADER = "X-Tutum-Action-URI"
UUID_REGEX = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class TutumViewSetMixin:
    """What every resource shares: request context for actions, responses carrying the action's URI."""

    def request_context(self) -> services.RequestContext:
        data = self.request.data  # parsing here makes a non-JSON body a 415 on every write
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        return services.RequestContext(
            method=self.request.method,
            path=self.request.path,
            body=json.dumps(data) if data else "",
            user_agent=self.request.headers.get("User-Agent", ""),
            ip=self.request.META.get("REMOTE_ADDR") or None,
        )

    def validated(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def action_response(self, obj, action: Action, status_code: int) -> Response:
        return Response(
            self.get_serializer(obj).data, status=status_code, headers={ACTION_HEADER: uris.action_uri(action.uuid)}
        )

    def refetch(self, pk):
        return self.get_queryset().get(pk=pk)


def accepted(serializer, description: str) -> OpenApiResponse:
    return OpenApiResponse(serializer, description=f"{description}; X-Tutum-Action-URI names the action")


#: Every write answers with the resource URI of the action it recorded.
ACTION_HEADER_PARAMETER = OpenApiParameter(
    ACTION_HEADER,
    str,
    OpenApiParameter.HEADER,
    response=[200, 201, 202],
    description="Resource URI of the action this call recorded, e.g. /api/v1/action/<uuid>/",
)


def write_schema(**kwargs):
    return extend_schema(parameters=[ACTION_HEADER_PARAMETER], **kwargs)


@extend_schema_view(
    list=extend_schema(summary="List node clusters", responses={200: serializers.NodeClusterSerializer, **errors(400)}),
    retrieve=extend_schema(
        summary="Get a node cluster", responses={200: serializers.NodeClusterSerializer, **errors(404)}
    ),
    create=write_schema(
        summary="Create a node cluster (state Init; nothing is deployed yet)",
        request=serializers.NodeClusterCreateSerializer,
        responses={201: accepted(serializers.NodeClusterSerializer, "Created"), **errors(400, 413, 415)},
    ),
    partial_update=write_schema(
        summary="Scale, retag or rename a node cluster",
        request=serializers.NodeClusterUpdateSerializer,
        responses={
            200: accepted(serializers.NodeClusterSerializer, "Changed at once (tags, nickname, target before deploy)"),
            202: accepted(serializers.NodeClusterSerializer, "Scaling started"),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    destroy=write_schema(
        summary="Terminate a node cluster and all its nodes",
        responses={202: accepted(serializers.NodeClusterSerializer, "Terminating"), **errors(400, 404, 409, 413, 415)},
    ),
    deploy=write_schema(
        summary="Deploy a node cluster created in Init",
        request=None,
        responses={202: accepted(serializers.NodeClusterSerializer, "Deploying"), **errors(400, 404, 409, 413, 415)},
    ),
    docker_upgrade=write_schema(
        summary="Upgrade Docker on every deployed node of the cluster",
        request=None,
        responses={202: accepted(serializers.NodeClusterSerializer, "Upgrading"), **errors(400, 404, 409, 413, 415)},
    ),
)
class NodeClusterViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/nodecluster/`: list, create, get, scale/tag (PATCH), terminate (DELETE), deploy, docker-upgrade."""

    serializer_class = serializers.NodeClusterSerializer
    filterset_class = NodeClusterFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.node_cluster_list(owner=self.request.user)

    def create(self, request):
        context = self.request_context()
        data = self.validated(serializers.NodeClusterCreateSerializer)
        cluster, action = services.node_cluster_create(owner=request.user, context=context, **data)
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_201_CREATED)

    def partial_update(self, request, uuid=None):
        context = self.request_context()
        data = self.validated(serializers.NodeClusterUpdateSerializer)
        cluster, action, asynchronous = services.node_cluster_update(
            node_cluster_uuid=uuid, owner=request.user, context=context, **data
        )
        code = status.HTTP_202_ACCEPTED if asynchronous else status.HTTP_200_OK
        return self.action_response(self.refetch(cluster.pk), action, code)

    def destroy(self, request, uuid=None):
        context = self.request_context()
        cluster, action = services.node_cluster_terminate(node_cluster_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"])
    def deploy(self, request, uuid=None):
        context = self.request_context()
        cluster, action = services.node_cluster_deploy(node_cluster_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="docker-upgrade")
    def docker_upgrade(self, request, uuid=None):
        context = self.request_context()
        cluster, action = services.node_cluster_docker_upgrade(
            node_cluster_uuid=uuid, owner=request.user, context=context
        )
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List nodes", responses={200: serializers.NodeSerializer, **errors(400)}),
    retrieve=extend_schema(summary="Get a node", responses={200: serializers.NodeSerializer, **errors(404)}),
    partial_update=write_schema(
        summary="Rename or retag a node",
        request=serializers.NodeUpdateSerializer,
        responses={200: accepted(serializers.NodeSerializer, "Changed"), **errors(400, 404, 409, 413, 415)},
    ),
    destroy=write_schema(
        summary="Terminate a node",
        responses={202: accepted(serializers.NodeSerializer, "Terminating"), **errors(400, 404, 409, 413, 415)},
    ),
    health_check=write_schema(
        summary="Check that the node is reachable",
        request=None,
        responses={202: accepted(serializers.NodeSerializer, "Check started"), **errors(400, 404, 409, 413, 415)},
    ),
    docker_upgrade=write_schema(
        summary="Upgrade Docker on the node",
        request=None,
        responses={202: accepted(serializers.NodeSerializer, "Upgrading"), **errors(400, 404, 409, 413, 415)},
    ),
)
class NodeViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/node/`: list, get, rename/tag (PATCH), terminate (DELETE), health-check, docker-upgrade."""

    serializer_class = serializers.NodeSerializer
    filterset_class = NodeFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.node_list(owner=self.request.user)

    def partial_update(self, request, uuid=None):
        context = self.request_context()
        data = self.validated(serializers.NodeUpdateSerializer)
        node, action = services.node_update(node_uuid=uuid, owner=request.user, context=context, **data)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_200_OK)

    def destroy(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_terminate(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="health-check")
    def health_check(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_health_check(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="docker-upgrade")
    def docker_upgrade(self, request, uuid=None):
        context = self.request_context()
        node, action = services.node_docker_upgrade(node_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(node.pk), action, status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        summary="List actions, newest first", responses={200: serializers.ActionSerializer, **errors(400)}
    ),
    retrieve=extend_schema(summary="Get an action", responses={200: serializers.ActionSerializer, **errors(404)}),
    cancel=write_schema(
        summary="Cancel a pending or in-progress action",
        request=None,
        responses={202: accepted(serializers.ActionSerializer, "Canceling"), **errors(400, 404, 409, 413, 415)},
    ),
    retry=write_schema(
        summary="Run a finished cluster action again",
        request=None,
        responses={202: accepted(serializers.ActionSerializer, "In progress again"), **errors(400, 404, 409, 413, 415)},
    ),
)
class ActionViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/action/`: list, get, cancel, retry."""

    serializer_class = serializers.ActionSerializer
    filterset_class = ActionFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.action_list(owner=self.request.user)

    @route(detail=True, methods=["post"])
    def cancel(self, request, uuid=None):
        context = self.request_context()
        action = services.action_cancel(action_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(action.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"])
    def retry(self, request, uuid=None):
        context = self.request_context()
        action = services.action_retry(action_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(action.pk), action, status.HTTP_202_ACCEPTED)


def catalog_schema(serializer, noun: str):
    return extend_schema_view(
        list=extend_schema(summary=f"List {noun}s", responses={200: serializer, **errors(400)}),
        retrieve=extend_schema(summary=f"Get a {noun}", responses={200: serializer, **errors(404)}),
    )


class CatalogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Read-only catalog resources, looked up by the names in their URI (`provider/name`)."""

    #: URL keyword -> ORM lookup used to fetch one object.
    lookups: dict[str, str] = {}

    def get_object(self):
        filters = {orm: self.kwargs[kwarg] for kwarg, orm in self.lookups.items()}
        obj = self.get_queryset().filter(**filters).first()
        if obj is None:
            raise NotFound()
        return obj


@catalog_schema(serializers.ProviderSerializer, "provider")
class ProviderViewSet(CatalogViewSet):
    serializer_class = serializers.ProviderSerializer
    filterset_class = ProviderFilterSet
    lookups = {"name": "name"}

    def get_queryset(self):
        return selectors.provider_list()


@catalog_schema(serializers.RegionSerializer, "region")
class RegionViewSet(CatalogViewSet):
    serializer_class = serializers.RegionSerializer
    filterset_class = RegionFilterSet
    lookups = {"provider": "provider__name", "name": "name"}

    def get_queryset(self):
        return selectors.region_list()


@catalog_schema(serializers.AvailabilityZoneSerializer, "availability zone")
class AvailabilityZoneViewSet(CatalogViewSet):
    serializer_class = serializers.AvailabilityZoneSerializer
    filterset_class = AvailabilityZoneFilterSet
    lookups = {"provider": "region__provider__name", "region": "region__name", "name": "name"}

    def get_queryset(self):
        return selectors.availability_zone_list()


@catalog_schema(serializers.NodeTypeSerializer, "node type")
class NodeTypeViewSet(CatalogViewSet):
    serializer_class = serializers.NodeTypeSerializer
    filterset_class = NodeTypeFilterSet
    lookups = {"provider": "provider__name", "name": "name"}

    def get_queryset(self):
        return selectors.node_type_list()


class AuthView(APIView):
    """`/api/v1/auth/`: 200 with the caller's username when the credentials are good (clients verify keys here)."""

    @extend_schema(
        summary="Check credentials",
        responses={
            200: inline_serializer(
                "AuthResponse", {"username": drf_serializers.CharField(), "user": drf_serializers.CharField()}
            ),
            **errors(),
        },
    )
    def get(self, request):
        return Response({"username": request.user.get_username(), "user": request.user.get_username()})
