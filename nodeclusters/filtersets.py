"""List filters (django-filter): explicit per resource; a bad value (unknown state, malformed URI) is a 400.

The exception is `uuid__startswith`, which takes any text (see `canonical_uuid_prefix`). What each filter takes is
the pattern the OpenAPI document states for it (`api/schema.py`), checked as is: no surrounding whitespace is
trimmed where the pattern has none. An empty value (`?state=`) is no filter, as the document says
(`allowEmptyValue`).
"""

import datetime
import uuid as uuid_module

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from .choices import ActionState, NodeClusterState, NodeState
from .models import Action, AvailabilityZone, Node, NodeCluster, NodeType, Provider, Region
from .wire import uris
from .wire.dates import parse_date_input
from .wire.grammar import (
    DATE_INPUT_DESCRIPTION,
    DATE_INPUT_PATTERN,
    UUID_REGEX,
    fullmatch,
    uri_input_pattern,
)

#: Text filters (`name`, `docker_version`): anything but NUL, which Django's forms refuse (and PostgreSQL could not
#: compare).
TEXT_FILTER_SCHEMA = {"type": "string", "pattern": r"^[^\x00]*$", "description": "Exact match; no NUL character."}


@extend_schema_field(TEXT_FILTER_SCHEMA)
class TextFilter(django_filters.CharFilter):
    """An exact match on text."""


class PatternFormField(forms.CharField):
    """Text that must match `pattern` exactly as sent; `convert` turns it into the filter's value."""

    pattern = ""
    message = "%(value)r is not valid here."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, strip=False, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        if not fullmatch(self.pattern, value):
            # Messages are %-formatted downstream: the caller's text goes in as a parameter, never as the format.
            raise ValidationError(self.message, params={"value": value})
        return self.convert(value)

    def convert(self, value):
        return value


class UUIDFormField(PatternFormField):
    pattern = rf"^{UUID_REGEX}$"
    message = "%(value)r is not a uuid (32 hex digits, dashes optional)."

    def convert(self, value):
        return uuid_module.UUID(value)


@extend_schema_field(
    {
        "type": "string",
        "pattern": rf"^{UUID_REGEX}$",
        "example": uris.EXAMPLES["nodecluster"].split("/")[-2],
        "description": "The whole uuid, any case, dashes optional.",
    }
)
class UUIDFilter(django_filters.Filter):
    field_class = UUIDFormField


class ResourceURIFormField(PatternFormField):
    """A resource URI of one kind (or a full URL), cleaned to its lookup values."""

    def __init__(self, *args, kind: str, **kwargs):
        self.kind = kind
        self.pattern = uri_input_pattern(kind)
        self.message = f"%(value)r is not a {kind} resource URI; expected one like {uris.EXAMPLES[kind]}"
        super().__init__(*args, **kwargs)

    def convert(self, value):
        return uris.parse(self.kind, value)  # the pattern keeps out what it cannot parse


def uri_filter_schema(kind: str) -> dict:
    return {
        "type": "string",
        "pattern": uri_input_pattern(kind),
        "example": uris.EXAMPLES[kind],
        "description": f"A {kind} resource URI (or full URL; the last slash optional).",
    }


class ResourceURIFilter(django_filters.Filter):
    """Filter by a resource URI: `lookups` maps the URI's parts (e.g. provider, name) to ORM lookups."""

    field_class = ResourceURIFormField

    def __init__(self, *args, kind: str, lookups: dict[str, str], **kwargs):
        self.lookups = lookups
        super().__init__(*args, kind=kind, **kwargs)
        extend_schema_field(uri_filter_schema(kind))(self)

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{orm: value[part] for part, orm in self.lookups.items()}).distinct()


class DateFormField(PatternFormField):
    """A date in RFC 2822 (as the API writes them) or ISO 8601: `DATE_INPUT_PATTERN`."""

    pattern = DATE_INPUT_PATTERN
    message = (
        "%(value)r is not a date; use RFC 2822 ('Tue, 16 Sep 2014 17:01:15 +0000') or ISO 8601 "
        "('2014-09-16T17:01:15Z', '2014-09-16') with a day that exists."
    )

    def convert(self, value):
        return parse_date_input(value)


_LAST_SECOND = datetime.datetime.max.replace(microsecond=0, tzinfo=datetime.UTC)


@extend_schema_field(
    {
        "type": "string",
        "pattern": DATE_INPUT_PATTERN,
        "example": "Tue, 16 Sep 2014 17:01:15 +0000",
        "description": DATE_INPUT_DESCRIPTION,
    }
)
class DateFilter(django_filters.Filter):
    """Dates are rendered to the second, so `__lte` a rendered date covers that whole second."""

    field_class = DateFormField

    def filter(self, qs, value):
        if value is not None and self.lookup_expr == "lte" and value.microsecond == 0 and value < _LAST_SECOND:
            return qs.filter(**{f"{self.field_name}__lt": value + datetime.timedelta(seconds=1)})
        return super().filter(qs, value)


class StrictBooleanFormField(PatternFormField):
    """`true`/`false` (or 1/0, any case); anything else is a 400 rather than silently ignored."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}
    pattern = r"^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)$"
    message = "Expected true or false, got %(value)r."

    def convert(self, value):
        return self.VALUES[value.lower()]


@extend_schema_field(
    {"type": "boolean", "description": "`true` or `false` (`1`/`0` and any case are read the same way)."}
)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanFormField


#: The `object` filter of actions: a node cluster's or a node's resource URI.
OBJECT_PATTERN = uri_input_pattern("nodecluster", "node")


_HEX_DIGITS = frozenset("0123456789abcdef")
#: Hex digits before each dash of a uuid's canonical form; like the URLs, a prefix may leave any of them out.
_DASH_AFTER = (8, 12, 16, 20)
_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def canonical_uuid_prefix(text: str) -> str | None:
    """The start of a uuid in canonical form (lower case, dashed), or None when no uuid starts with `text`.

    The official CLI looks an identifier up as a uuid prefix before trying it as a name, so any text must be a
    valid query: one that cannot start a uuid simply matches nothing. Canonical form, because PostgreSQL compares
    against the dashed text of the uuid (SQLite against its 32 digits, with Django dropping the dashes).
    """
    digits: list[str] = []
    dashed = False  # the last character was a dash: two in a row start no uuid
    for char in text.lower():
        if char == "-":
            if dashed or len(digits) not in _DASH_AFTER:
                return None
            dashed = True
        elif char in _HEX_DIGITS:
            digits.append(char)
            dashed = False
        else:
            return None
    if len(digits) > 32:
        return None
    hex_digits = "".join(digits)
    return "-".join(hex_digits[start:end] for start, end in _GROUPS if hex_digits[start:end])


#: What a uuid prefix no uuid can start with cleans to.
NO_UUID = object()


class UUIDPrefixFormField(forms.Field):
    """Any text (a NUL too: it never reaches the database): a uuid prefix, or `NO_UUID`."""

    def to_python(self, value):
        text = (value or "").strip()
        if not text:
            return ""
        prefix = canonical_uuid_prefix(text)
        return NO_UUID if prefix is None else prefix


@extend_schema_field(
    {
        "type": "string",
        "description": "The first characters of the uuid (any case, dashes optional); text no uuid starts with "
        "matches nothing.",
    }
)
class UUIDPrefixFilter(django_filters.Filter):
    """`uuid__startswith`: the first characters of the uuid, any case, dashes optional. Text that cannot start a
    uuid (a name, say) matches nothing rather than being a 400: clients try it before `name=`."""

    field_class = UUIDPrefixFormField

    def filter(self, qs, value):
        if value is NO_UUID:
            return qs.none()
        return qs.filter(uuid__startswith=value) if value else qs


def _region(prefix: str) -> dict[str, str]:
    return {"provider": f"{prefix}region__provider__name", "name": f"{prefix}region__name"}


def _node_type(prefix: str) -> dict[str, str]:
    return {"provider": f"{prefix}node_type__provider__name", "name": f"{prefix}node_type__name"}


class NodeClusterFilterSet(django_filters.FilterSet):
    uuid = UUIDFilter()
    uuid__startswith = UUIDPrefixFilter()
    state = django_filters.ChoiceFilter(choices=NodeClusterState.choices)
    name = TextFilter()
    region = ResourceURIFilter(kind="region", lookups=_region(""))
    node_type = ResourceURIFilter(kind="nodetype", lookups=_node_type(""))

    class Meta:
        model = NodeCluster
        fields = []


class NodeFilterSet(django_filters.FilterSet):
    uuid = UUIDFilter()
    uuid__startswith = UUIDPrefixFilter()
    state = django_filters.ChoiceFilter(choices=NodeState.choices)
    node_cluster = ResourceURIFilter(kind="nodecluster", lookups={"uuid": "node_cluster__uuid"})
    node_type = ResourceURIFilter(kind="nodetype", lookups=_node_type(""))
    region = ResourceURIFilter(kind="region", lookups=_region(""))
    docker_version = TextFilter()

    class Meta:
        model = Node
        fields = []


class ActionFilterSet(django_filters.FilterSet):
    uuid = UUIDFilter()
    uuid__startswith = UUIDPrefixFilter()
    state = django_filters.ChoiceFilter(choices=ActionState.choices)
    start_date__gte = DateFilter(field_name="start_date", lookup_expr="gte")
    start_date__lte = DateFilter(field_name="start_date", lookup_expr="lte")
    end_date__gte = DateFilter(field_name="end_date", lookup_expr="gte")
    end_date__lte = DateFilter(field_name="end_date", lookup_expr="lte")
    object = extend_schema_field(
        {
            "type": "string",
            "pattern": OBJECT_PATTERN,
            "example": uris.EXAMPLES["nodecluster"],
            "description": "A node cluster's or a node's resource URI (or full URL): the actions on it; with "
            "`include_related=true` also those of its nodes (or of its cluster).",
        }
    )(django_filters.CharFilter(method="filter_object", strip=False))
    include_related = StrictBooleanFilter(method="filter_noop")

    class Meta:
        model = Action
        fields = []

    def filter_noop(self, queryset, name, value):
        return queryset  # read by filter_object

    def filter_object(self, queryset, name, value):
        """Actions on one object; with include_related, also those of its relatives (cluster <-> nodes)."""
        related = self.form.cleaned_data.get("include_related")
        if not fullmatch(OBJECT_PATTERN, value):  # also what `uris.parse` cannot take (`http://[`, once a 500)
            raise _invalid_object(value)
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
    name = TextFilter()

    class Meta:
        model = Provider
        fields = []


class RegionFilterSet(django_filters.FilterSet):
    name = TextFilter()
    provider = ResourceURIFilter(kind="provider", lookups={"name": "provider__name"})

    class Meta:
        model = Region
        fields = []


class AvailabilityZoneFilterSet(django_filters.FilterSet):
    name = TextFilter()
    region = ResourceURIFilter(kind="region", lookups=_region(""))

    class Meta:
        model = AvailabilityZone
        fields = []


class NodeTypeFilterSet(django_filters.FilterSet):
    name = TextFilter()
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
