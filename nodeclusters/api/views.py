"""API views: declarative reads; each write parses input, calls one service and renders the result."""

import json

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, status, viewsets
from rest_framework import serializers as drf_serializers
from rest_framework.decorators import action as route
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
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
from nodeclusters.wire import uris

from . import conditional, idempotency, serializers
from .conditional import ConditionalRequestsMixin, if_match
from .idempotency import IdempotentWritesMixin
from .renderers import PlainTextRenderer, errors_as_json
from .schema import (
    FIRST_LISTED,
    ITS_ACTION,
    THE_OBJECT,
    LinkedResponse,
    catalog_links,
    errors,
    links,
    uri_list_item,
)

ACTION_HEADER = "X-Tutum-Action-URI"


class TutumAutoSchema(AutoSchema):
    """drf-spectacular's inspector (here, not in schema.py: importing it loads DRF's views, whose filter backend
    imports schema.py), plus links on responses and what every optional query parameter shares."""

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if isinstance(serializer, LinkedResponse):
            response["links"] = serializer.links
        return response

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter["in"] == "query" and not parameter.get("required"):
                # Every list filter, page parameter and option reads `?name=` as if `name` were not given.
                parameter["allowEmptyValue"] = True
        return parameters


class TutumViewSetMixin(ConditionalRequestsMixin, IdempotentWritesMixin):
    """What every resource shares: request context for actions, responses carrying the action's URI (and the
    object's ETag), conditional requests, and writes made safe to retry by an Idempotency-Key."""

    schema = TutumAutoSchema()

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


# Links from each answer to the operations on the objects it names, so a client (or a fuzzer's stateful phase)
# can follow a created cluster, its nodes and the actions every write records.
CLUSTER_ITSELF = links("nodecluster", THE_OBJECT, via="the cluster")
CLUSTER_FIRST_NODE = links("node", uri_list_item("node", "/nodes/0"), via="its first node")
CLUSTER_FIRST_ACTION = links("action", uri_list_item("action", "/actions/0"), via="its first action")
NODE_ITSELF = links("node", THE_OBJECT, via="the node")
NODE_CLUSTER = links("nodecluster", uri_list_item("nodecluster", "/node_cluster"), via="its cluster")
ACTION_ITSELF = links("action", THE_OBJECT, via="the action")
ACTION_ON_CLUSTER = links("nodecluster", uri_list_item("nodecluster", "/object"), via="the cluster acted on")
ACTION_ON_NODE = links("node", uri_list_item("node", "/object"), via="the node acted on")
RECORDED_ACTION = links("action", ITS_ACTION, via="the action recorded")


def accepted(serializer, description: str, *, follow: dict) -> OpenApiResponse:
    """A write's answer: the object, the action's URI in a header, and links to both."""
    return LinkedResponse(
        serializer, f"{description}; X-Tutum-Action-URI names the action", links={**follow, **RECORDED_ACTION}
    )


def found(serializer, *, follow: dict) -> OpenApiResponse:
    return LinkedResponse(serializer, "", links=follow)


ACTION_URI_SCHEMA = {
    "type": "string",
    "pattern": r"^/api/v1/action/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/$",
}
#: Every write answers with the resource URI of the action it recorded (a dry run records none: it answers 200).
ACTION_HEADER_PARAMETER = OpenApiParameter(
    ACTION_HEADER,
    ACTION_URI_SCHEMA,
    OpenApiParameter.HEADER,
    required=True,
    response=[201, 202],
    description="Resource URI of the action this call recorded, e.g. /api/v1/action/<uuid>/",
)
ACTION_HEADER_ON_200 = OpenApiParameter(
    ACTION_HEADER,
    ACTION_URI_SCHEMA,
    OpenApiParameter.HEADER,
    response=[200],
    description="Resource URI of the action this call recorded; absent from a dry run's answer",
)


def write_schema(*, dry_run: bool = False, if_match: bool = True, parameters=(), **kwargs):
    """A write's schema; with `dry_run`, the `?dry_run=true` parameter too. Every write takes an Idempotency-Key and
    answers with the object's ETag; one on an existing object (`if_match`) takes If-Match and may answer 412."""
    extra = [serializers.DryRunQuerySerializer] if dry_run else []
    extra += [
        idempotency.IDEMPOTENCY_KEY_PARAMETER,
        idempotency.IDEMPOTENT_REPLAYED_PARAMETER,
        conditional.ETAG_PARAMETER,
    ]
    extra += [conditional.IF_MATCH_PARAMETER] if if_match else []
    precondition = conditional.PRECONDITION_FAILED if if_match else {}
    kwargs["responses"] = {**kwargs["responses"], **idempotency.IDEMPOTENCY_ERRORS, **precondition}
    return extend_schema(parameters=[ACTION_HEADER_PARAMETER, ACTION_HEADER_ON_200, *extra, *parameters], **kwargs)


DRY_RUN_ANSWER = OpenApiResponse(
    serializers.DryRunSerializer, description="Dry run (?dry_run=true): what the request would do; nothing changed"
)


CLUSTER_WRITE_FOLLOWS = {**CLUSTER_ITSELF, **CLUSTER_FIRST_NODE}


@extend_schema_view(
    list=extend_schema(
        summary="List node clusters",
        responses={
            200: found(serializers.NodeClusterSerializer, follow=links("nodecluster", FIRST_LISTED, via="the first")),
            **errors(400),
        },
    ),
    retrieve=conditional.read_schema(
        summary="Get a node cluster",
        responses={
            200: found(serializers.NodeClusterSerializer, follow={**CLUSTER_WRITE_FOLLOWS, **CLUSTER_FIRST_ACTION}),
            **errors(404),
        },
    ),
    create=write_schema(
        summary="Create a node cluster (state Init; nothing is deployed yet)",
        if_match=False,
        request=serializers.NodeClusterCreateSerializer,
        dry_run=True,
        responses={
            200: DRY_RUN_ANSWER,
            201: accepted(serializers.NodeClusterSerializer, "Created", follow=CLUSTER_ITSELF),
            **errors(400, 413, 415),
        },
    ),
    partial_update=write_schema(
        summary="Scale, retag or rename a node cluster, set its bounds and policies, or remove named nodes",
        request=serializers.NodeClusterUpdateSerializer,
        dry_run=True,
        responses={
            200: accepted(
                PolymorphicProxySerializer(
                    component_name="NodeClusterOrDryRun",
                    serializers=[serializers.NodeClusterSerializer, serializers.DryRunSerializer],
                    resource_type_field_name=None,
                ),
                "Changed at once (tags, nickname, settings, target before deploy), or a dry run's plan",
                follow=CLUSTER_WRITE_FOLLOWS,
            ),
            202: accepted(serializers.NodeClusterSerializer, "Scaling started", follow=CLUSTER_WRITE_FOLLOWS),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    destroy=write_schema(
        summary="Terminate a node cluster and all its nodes (it stays listed, Terminating then Terminated)",
        dry_run=True,
        responses={
            200: DRY_RUN_ANSWER,
            202: accepted(serializers.NodeClusterSerializer, "Terminating", follow=CLUSTER_WRITE_FOLLOWS),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    deploy=write_schema(
        summary="Deploy a node cluster created in Init",
        request=None,
        dry_run=True,
        responses={
            200: DRY_RUN_ANSWER,
            202: accepted(serializers.NodeClusterSerializer, "Deploying", follow=CLUSTER_WRITE_FOLLOWS),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    docker_upgrade=write_schema(
        summary="Upgrade Docker on every deployed node of the cluster",
        request=None,
        responses={
            202: accepted(serializers.NodeClusterSerializer, "Upgrading", follow=CLUSTER_WRITE_FOLLOWS),
            **errors(400, 404, 409, 413, 415),
        },
    ),
)
class NodeClusterViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/nodecluster/`: list, create, get, scale/tag (PATCH), terminate (DELETE), deploy, docker-upgrade."""

    serializer_class = serializers.NodeClusterSerializer
    filterset_class = NodeClusterFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.node_cluster_list(owner=self.request.user)

    def dry_run_requested(self) -> bool:
        """`?dry_run=true`: answer what the write would do and do nothing (400 for a value that is not a boolean)."""
        query = serializers.DryRunQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data.get("dry_run", False)

    def dry_run_response(self, write, *, uuid=None, creating: bool = False) -> Response:
        plan = services.dry_run(
            owner=self.request.user, write=lambda: write()[0], node_cluster_uuid=uuid, creating=creating
        )
        return Response(plan, status=status.HTTP_200_OK)

    def create(self, request):
        context = self.request_context()
        data = self.validated(serializers.NodeClusterCreateSerializer)

        def write():
            return services.node_cluster_create(owner=request.user, context=context, **data)

        if self.dry_run_requested():
            return self.dry_run_response(write, creating=True)
        cluster, action = write()
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_201_CREATED)

    @if_match("nodecluster")
    def partial_update(self, request, uuid=None):
        context = self.request_context()
        data = self.validated(serializers.NodeClusterUpdateSerializer)

        def write():
            return services.node_cluster_update(node_cluster_uuid=uuid, owner=request.user, context=context, **data)

        if self.dry_run_requested():
            return self.dry_run_response(write, uuid=uuid)
        cluster, action, asynchronous = write()
        code = status.HTTP_202_ACCEPTED if asynchronous else status.HTTP_200_OK
        return self.action_response(self.refetch(cluster.pk), action, code)

    @if_match("nodecluster")
    def destroy(self, request, uuid=None):
        context = self.request_context()

        def write():
            return services.node_cluster_terminate(node_cluster_uuid=uuid, owner=request.user, context=context)

        if self.dry_run_requested():
            return self.dry_run_response(write, uuid=uuid)
        cluster, action = write()
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"])
    @if_match("nodecluster")
    def deploy(self, request, uuid=None):
        context = self.request_context()

        def write():
            return services.node_cluster_deploy(node_cluster_uuid=uuid, owner=request.user, context=context)

        if self.dry_run_requested():
            return self.dry_run_response(write, uuid=uuid)
        cluster, action = write()
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"], url_path="docker-upgrade")
    @if_match("nodecluster")
    def docker_upgrade(self, request, uuid=None):
        context = self.request_context()
        cluster, action = services.node_cluster_docker_upgrade(
            node_cluster_uuid=uuid, owner=request.user, context=context
        )
        return self.action_response(self.refetch(cluster.pk), action, status.HTTP_202_ACCEPTED)


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


@extend_schema_view(
    list=extend_schema(
        summary="List actions, newest first",
        responses={
            200: found(serializers.ActionSerializer, follow=links("action", FIRST_LISTED, via="the first")),
            **errors(400),
        },
    ),
    retrieve=conditional.read_schema(
        summary="Get an action",
        responses={
            200: found(serializers.ActionSerializer, follow={**ACTION_ITSELF, **ACTION_ON_CLUSTER, **ACTION_ON_NODE}),
            **errors(404),
        },
    ),
    cancel=write_schema(
        summary="Cancel a pending or in-progress action",
        request=None,
        responses={
            202: accepted(serializers.ActionSerializer, "Canceling", follow=ACTION_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    retry=write_schema(
        summary="Run a finished cluster action again",
        request=None,
        responses={
            202: accepted(serializers.ActionSerializer, "In progress again", follow=ACTION_ITSELF),
            **errors(400, 404, 409, 413, 415),
        },
    ),
    logs=extend_schema(
        summary="Read an action's log",
        description=(
            "JSON by default: the lines as the Stream API's log messages, oldest first. With `Accept: text/plain` "
            "or `?format=text`, plain text: one line per log line, each starting with its UTC time in ISO 8601. "
            "Errors are JSON either way."
        ),
        parameters=[serializers.ActionLogQuerySerializer],
        responses={
            (200, "application/json"): serializers.ActionLogSerializer,
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="`<ISO 8601 UTC time> <message>` lines"),
            **errors(400, 404, only_json=True),
        },
    ),
)
class ActionViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/action/`: list, get, cancel, retry, and the action's log."""

    serializer_class = serializers.ActionSerializer
    filterset_class = ActionFilterSet
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return selectors.action_list(owner=self.request.user)

    def finalize_response(self, request, response, *args, **kwargs):
        return errors_as_json(super().finalize_response(request, response, *args, **kwargs))

    # Not a key of the action's JSON: python-tutum would copy it over its `Action.logs()` method.
    @route(detail=True, methods=["get"], renderer_classes=[*api_settings.DEFAULT_RENDERER_CLASSES, PlainTextRenderer])
    def logs(self, request, uuid=None):
        query = serializers.ActionLogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        lines = selectors.action_log_lines(action=self.get_object(), tail=query.validated_data.get("tail"))
        if isinstance(request.accepted_renderer, PlainTextRenderer):
            # Not DRF's Response: it drops the Content-Type of an empty body (`?tail=0`, an action with no log).
            return HttpResponse("".join(line.render() for line in lines), content_type="text/plain; charset=utf-8")
        return Response(serializers.ActionLogSerializer(lines).data)

    @route(detail=True, methods=["post"])
    @if_match("action")
    def cancel(self, request, uuid=None):
        context = self.request_context()
        action = services.action_cancel(action_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(action.pk), action, status.HTTP_202_ACCEPTED)

    @route(detail=True, methods=["post"])
    @if_match("action")
    def retry(self, request, uuid=None):
        context = self.request_context()
        action = services.action_retry(action_uuid=uuid, owner=request.user, context=context)
        return self.action_response(self.refetch(action.pk), action, status.HTTP_202_ACCEPTED)


def catalog_schema(serializer, noun: str, kind: str):
    return extend_schema_view(
        list=extend_schema(
            summary=f"List {noun}s",
            responses={200: found(serializer, follow=catalog_links(kind)), **errors(400)},
        ),
        retrieve=extend_schema(summary=f"Get a {noun}", responses={200: serializer, **errors(404)}),
    )


class CatalogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Read-only catalog resources, looked up by the names in their URI (`provider/name`)."""

    schema = TutumAutoSchema()

    #: URL keyword -> ORM lookup used to fetch one object.
    lookups: dict[str, str] = {}

    def get_object(self):
        filters = {orm: self.kwargs[kwarg] for kwarg, orm in self.lookups.items()}
        obj = self.get_queryset().filter(**filters).first()
        if obj is None:
            raise NotFound()
        return obj


@catalog_schema(serializers.ProviderSerializer, "provider", "provider")
class ProviderViewSet(CatalogViewSet):
    serializer_class = serializers.ProviderSerializer
    filterset_class = ProviderFilterSet
    lookups = {"name": "name"}

    def get_queryset(self):
        return selectors.provider_list()


@catalog_schema(serializers.RegionSerializer, "region", "region")
class RegionViewSet(CatalogViewSet):
    serializer_class = serializers.RegionSerializer
    filterset_class = RegionFilterSet
    lookups = {"provider": "provider__name", "name": "name"}

    def get_queryset(self):
        return selectors.region_list()


@catalog_schema(serializers.AvailabilityZoneSerializer, "availability zone", "az")
class AvailabilityZoneViewSet(CatalogViewSet):
    serializer_class = serializers.AvailabilityZoneSerializer
    filterset_class = AvailabilityZoneFilterSet
    lookups = {"provider": "region__provider__name", "region": "region__name", "name": "name"}

    def get_queryset(self):
        return selectors.availability_zone_list()


@catalog_schema(serializers.NodeTypeSerializer, "node type", "nodetype")
class NodeTypeViewSet(CatalogViewSet):
    serializer_class = serializers.NodeTypeSerializer
    filterset_class = NodeTypeFilterSet
    lookups = {"provider": "provider__name", "name": "name"}

    def get_queryset(self):
        return selectors.node_type_list()


class AuthView(APIView):
    """`/api/v1/auth/`: 200 with the caller's username when the credentials are good (clients verify keys here)."""

    schema = TutumAutoSchema()

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
