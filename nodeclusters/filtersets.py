"""List filters (django-filter): explicit per resource; a bad value (unknown state, malformed URI) is a 400."""

import datetime
import re

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .api import dates, uris
from .api.pagination import TastypiePagination
from .choices import ActionState, NodeClusterState, NodeState
from .models import Action, AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region


class ResourceURIFormField(forms.CharField):
    """A resource URI of one kind, cleaned to its lookup values."""

    def __init__(self, *args, kind: str, **kwargs):
        self.kind = kind
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            return uris.parse(self.kind, value)
        except uris.InvalidResourceURI as error:
            # Messages are %-formatted downstream: the caller's text goes in as a parameter, never as the format.
            raise ValidationError("%(reason)s", params={"reason": str(error)}) from None


@extend_schema_field(OpenApiTypes.STR)
class ResourceURIFilter(django_filters.Filter):
    """Filter by a resource URI: `lookups` maps the URI's parts (e.g. provider, name) to ORM lookups."""

    field_class = ResourceURIFormField

    def __init__(self, *args, kind: str, lookups: dict[str, str], **kwargs):
        self.lookups = lookups
        super().__init__(*args, kind=kind, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{orm: value[part] for part, orm in self.lookups.items()}).distinct()


class DateFormField(forms.CharField):
    """A date in RFC 2822 (as the API writes them) or ISO 8601."""

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            return dates.parse_any(value)
        except ValueError as error:
            raise ValidationError("%(reason)s", params={"reason": str(error)}) from None


_LAST_SECOND = datetime.datetime.max.replace(microsecond=0, tzinfo=datetime.UTC)


@extend_schema_field(OpenApiTypes.STR)
class DateFilter(django_filters.Filter):
    """Dates are rendered to the second, so `__lte` a rendered date covers that whole second."""

    field_class = DateFormField

    def filter(self, qs, value):
        if value is not None and self.lookup_expr == "lte" and value.microsecond == 0 and value < _LAST_SECOND:
            return qs.filter(**{f"{self.field_name}__lt": value + datetime.timedelta(seconds=1)})
        return super().filter(qs, value)


class StrictBooleanFormField(forms.CharField):
    """`true`/`false` (or 1/0); anything else is a 400 rather than silently ignored."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            return self.VALUES[value.lower()]
        except KeyError:
            raise ValidationError("Expected true or false, got %(value)r.", params={"value": value}) from None


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanFormField


_UUID_PREFIX = re.compile(r"^[0-9a-fA-F-]{1,36}$")


class UUIDPrefixFormField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        if value and not _UUID_PREFIX.match(value):
            raise ValidationError("uuid__startswith takes the first characters of a UUID (hex digits and dashes).")
        return value.lower() if value else value


@extend_schema_field(OpenApiTypes.STR)
class UUIDPrefixFilter(django_filters.Filter):
    field_class = UUIDPrefixFormField

    def filter(self, qs, value):
        return qs.filter(uuid__istartswith=value) if value else qs


def _region(prefix: str) -> dict[str, str]:
    return {"provider": f"{prefix}region__provider__name", "name": f"{prefix}region__name"}


def _node_type(prefix: str) -> dict[str, str]:
    return {"provider": f"{prefix}node_type__provider__name", "name": f"{prefix}node_type__name"}


class NodeClusterFilterSet(django_filters.FilterSet):
    uuid = django_filters.UUIDFilter()
    uuid__startswith = UUIDPrefixFilter()
    state = django_filters.ChoiceFilter(choices=NodeClusterState.choices)
    name = django_filters.CharFilter()
    region = ResourceURIFilter(kind="region", lookups=_region(""))
    node_type = ResourceURIFilter(kind="nodetype", lookups=_node_type(""))

    class Meta:
        model = NodeCluster
        fields = []


class NodeFilterSet(django_filters.FilterSet):
    uuid = django_filters.UUIDFilter()
    uuid__startswith = UUIDPrefixFilter()
    state = django_filters.ChoiceFilter(choices=NodeState.choices)
    node_cluster = ResourceURIFilter(kind="nodecluster", lookups={"uuid": "node_cluster__uuid"})
    node_type = ResourceURIFilter(kind="nodetype", lookups=_node_type(""))
    region = ResourceURIFilter(kind="region", lookups=_region(""))
    docker_version = django_filters.CharFilter()

    class Meta:
        model = Node
        fields = []


class ActionFilterSet(django_filters.FilterSet):
    uuid = django_filters.UUIDFilter()
    state = django_filters.ChoiceFilter(choices=ActionState.choices)
    start_date__gte = DateFilter(field_name="start_date", lookup_expr="gte")
    start_date__lte = DateFilter(field_name="start_date", lookup_expr="lte")
    end_date__gte = DateFilter(field_name="end_date", lookup_expr="gte")
    end_date__lte = DateFilter(field_name="end_date", lookup_expr="lte")
    object = django_filters.CharFilter(method="filter_object")
    include_related = StrictBooleanFilter(method="filter_noop")

    class Meta:
        model = Action
        fields = []

    def filter_noop(self, queryset, name, value):
        return queryset  # read by filter_object

    def filter_object(self, queryset, name, value):
        """Actions on one object; with include_related, also those of its relatives (cluster <-> nodes)."""
        related = self.form.cleaned_data.get("include_related")
        for kind in ("nodecluster", "node"):
            try:
                found = uris.parse(kind, value)
            except uris.InvalidResourceURI:
                continue
            if not related:
                uri = uris.nodecluster_uri(found["uuid"]) if kind == "nodecluster" else uris.node_uri(found["uuid"])
                return queryset.filter(object_uri=uri)
            if kind == "nodecluster":
                return queryset.filter(node_cluster__uuid=found["uuid"])
            node = Node.objects.filter(uuid=found["uuid"]).values("node_cluster_id").first()
            cluster_uri = uris.nodecluster_uri(node["node_cluster_id"]) if node and node["node_cluster_id"] else None
            return queryset.filter(Q(node__uuid=found["uuid"]) | Q(object_uri=cluster_uri))
        raise _invalid_object(value)


def _invalid_object(value):
    from rest_framework.exceptions import ValidationError as APIValidationError

    return APIValidationError(
        {"object": [f"{value!r} is not a node cluster or node resource URI; expected one like {uris.EXAMPLES['node']}"]}
    )


class ProviderFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()

    class Meta:
        model = Provider
        fields = []


class RegionFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    provider = ResourceURIFilter(kind="provider", lookups={"name": "provider__name"})

    class Meta:
        model = Region
        fields = []


class AvailabilityZoneFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    region = ResourceURIFilter(kind="region", lookups=_region(""))

    class Meta:
        model = AvailabilityZone
        fields = []


class NodeTypeFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    regions = ResourceURIFilter(kind="region", lookups={"provider": "regions__provider__name", "name": "regions__name"})
    availability_zones = ResourceURIFilter(
        kind="az",
        lookups={
            "provider": "availability_zones__region__provider__name",
            "region": "availability_zones__region__name",
            "name": "availability_zones__name",
        },
    )

    class Meta:
        model = NodeType
        fields = []


class FilterBackend(DjangoFilterBackend):
    """django-filter, skipped for a request with no query parameter but the page's: it would build a form for
    nothing, on every bare list page."""

    def filter_queryset(self, request, queryset, view):
        if set(request.query_params) <= TastypiePagination.query_params:
            return queryset
        return super().filter_queryset(request, queryset, view)
