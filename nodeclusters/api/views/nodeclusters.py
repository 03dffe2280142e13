"""`/api/v1/nodecluster/`: the clusters, created, scaled, deployed and terminated through one service call each."""

from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action as route
from rest_framework.response import Response

from nodeclusters import selectors, services
from nodeclusters.filtersets import NodeClusterFilterSet

from .. import conditional, serializers
from ..conditional import if_match
from ..schema import FIRST_LISTED, errors, links
from .base import (
    CLUSTER_FIRST_ACTION,
    CLUSTER_FIRST_NODE,
    CLUSTER_ITSELF,
    DRY_RUN_ANSWER,
    TutumViewSetMixin,
    accepted,
    found,
    write_schema,
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
