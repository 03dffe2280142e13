"""The read-only catalog (provider, region, az, nodetype) and `/api/v1/auth/`."""

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, viewsets
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from nodeclusters import selectors
from nodeclusters.filtersets import AvailabilityZoneFilterSet, NodeTypeFilterSet, ProviderFilterSet, RegionFilterSet

from .. import serializers
from ..schema import catalog_links, errors
from .base import TutumAutoSchema, found


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
