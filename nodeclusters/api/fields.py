"""Input fields: what each request value may be, stated once (the schema extensions in schema.py describe them from
the same patterns), with error messages that say what to send instead."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from nodeclusters.models import NodeType, Region
from nodeclusters.wire import uris
from nodeclusters.wire.grammar import decimal_range_pattern, fullmatch, uri_input_pattern

from .schema import BLANK_NAME_PATTERN, MAX_NAME_LENGTH, MAX_TAGS, NAME_PATTERN, TAG_NAME_PATTERN, max_nodes_per_cluster

MAX_NODES_PER_CLUSTER = max_nodes_per_cluster()


def has_surrogate(text: str) -> bool:
    """Whether JSON's `\\udXXX` escapes put a lone surrogate in the text (no database can store one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class TextField(serializers.Field):
    """Free text (a name, a nickname): at most `max_length` characters as sent, no NUL, not only whitespace
    unless `blank`; stored without the whitespace around it. The document states it as `pattern`."""

    default_error_messages = {
        "invalid": "Expected a string.",
        "max_length": "At most {max_length} characters.",
        "nul": "May not contain NUL or unpaired surrogate characters.",
        "blank": "May not be blank.",
    }

    def __init__(self, *, max_length: int, blank: bool = False, **kwargs):
        self.max_length = max_length
        self.pattern = BLANK_NAME_PATTERN if blank else NAME_PATTERN
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if len(data) > self.max_length:  # first: the pattern then only ever reads a short string
            self.fail("max_length", max_length=self.max_length)
        if "\x00" in data or has_surrogate(data):
            self.fail("nul")
        if not fullmatch(self.pattern, data):
            self.fail("blank")
        return data.strip()

    def to_representation(self, value):
        return value


class NumberField(serializers.Field):
    """An integer in a range, as a JSON integer or as its decimal text (Tutum's CLI sends `--disk` as text).
    Never a boolean or a fraction. The document states it as `integer_schema`."""

    default_error_messages = {"invalid": "Expected an integer from {low} to {high}."}

    def __init__(self, *, min_value: int, max_value: int, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        self.text_pattern = decimal_range_pattern(min_value, max_value)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and fullmatch(self.text_pattern, data):
            return int(data)
        if isinstance(data, int) and not isinstance(data, bool) and self.min_value <= data <= self.max_value:
            return data
        self.fail("invalid", low=self.min_value, high=self.max_value)

    def to_representation(self, value):
        return value


class QueryNumberField(serializers.Field):
    """A whole number in a query string: ASCII digits only (no sign, space or `_`, which Python's int() takes)."""

    default_error_messages = {"invalid": "Expected a whole number from {low} to {high}."}

    def __init__(self, *, min_value: int, max_value: int, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and fullmatch(r"^[0-9]+$", data) and self.min_value <= int(data) <= self.max_value:
            return int(data)
        self.fail("invalid", low=self.min_value, high=self.max_value)

    def to_representation(self, value):
        return value


class TagListField(serializers.Field):
    """Tutum's tags: `[{"name": "tag-1"}, ...]` (plain strings are accepted too); stored as a list of names.
    The document states it as `tag_list_schema`."""

    default_error_messages = {
        # Doubled braces: DRF's fail() runs these messages through str.format.
        "invalid": 'Expected a list of tags such as [{{"name": "tag-1"}}].',
        "too_many": f"At most {MAX_TAGS} tags.",
        "bad_name": (
            f"Tag names are at most {MAX_NAME_LENGTH} characters, not only whitespace, with no control character, "
            "line separator or bidirectional control; got {value!r}."
        ),
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("invalid")
        if len(data) > MAX_TAGS:
            self.fail("too_many")
        names = []
        for item in data:
            name = item.get("name") if isinstance(item, dict) and set(item) <= {"name", "origin"} else item
            if not isinstance(name, str):
                self.fail("invalid")
            if len(name) > MAX_NAME_LENGTH or has_surrogate(name) or not fullmatch(TAG_NAME_PATTERN, name):
                self.fail("bad_name", value=name)
            names.append(name.strip())
        return names

    def to_representation(self, value):
        return [{"name": name} for name in value]


class CatalogURIField(serializers.Field):
    """A catalog object given by its resource URI (`/api/v1/region/digitalocean/lon1/`)."""

    def __init__(self, *, kind: str, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # The document's pattern first: it also keeps out what `uris.parse` cannot take (`http://[`).
        if not fullmatch(uri_input_pattern(self.kind), data) or has_surrogate(data):
            raise serializers.ValidationError(
                f"Expected a {self.kind} resource URI such as {uris.EXAMPLES[self.kind]}, got {data!r}."
            )
        parts = uris.parse(self.kind, data)
        if self.kind == "region":
            found = Region.objects.select_related("provider").filter(
                provider__name=parts["provider"], name=parts["name"]
            )
        else:
            found = NodeType.objects.select_related("provider").filter(
                provider__name=parts["provider"], name=parts["name"]
            )
        instance = found.first()
        if instance is None:
            listing = "/api/v1/region/" if self.kind == "region" else "/api/v1/nodetype/"
            raise serializers.ValidationError(f"No {self.kind} at {data}; GET {listing} lists them.")
        return instance

    def to_representation(self, value):
        raise NotImplementedError  # input only


class RegionURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="region", **kwargs)


class NodeTypeURIField(CatalogURIField):
    def __init__(self, **kwargs):
        super().__init__(kind="nodetype", **kwargs)


class ProviderOptionsField(serializers.Field):
    """`provider_options`: an object (null is the same as `{}`); the service checks it against the provider."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Expected an object such as {"vpc": {"id": "vpc-..."}}.')
        if has_surrogate(json.dumps(data, ensure_ascii=False)):
            raise serializers.ValidationError("May not contain unpaired surrogate characters.")
        return data

    def validate_empty_values(self, data):
        if data is None:
            return (True, {})  # null: no options, as Tutum's clients send for other providers
        return super().validate_empty_values(data)

    def to_representation(self, value):
        return value


class NodeURIListField(serializers.Field):
    """`remove_nodes`: node resource URIs (or full URLs), each at most once; the service checks membership."""

    default_error_messages = {
        "invalid": 'Expected a list of node resource URIs such as ["{example}"].',
        "too_many": "At most {limit} nodes.",
        "duplicate": "{value} is listed twice.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, list) or not all(
            isinstance(item, str) and fullmatch(uri_input_pattern("node"), item) and not has_surrogate(item)
            for item in data
        ):
            self.fail("invalid", example=uris.EXAMPLES["node"])
        if len(data) > MAX_NODES_PER_CLUSTER:
            self.fail("too_many", limit=MAX_NODES_PER_CLUSTER)
        seen = {}
        for item in data:
            node_uuid = uris.parse("node", item)["uuid"]
            if node_uuid in seen:
                self.fail("duplicate", value=item)
            seen[node_uuid] = item
        return list(seen)

    def to_representation(self, value):
        raise NotImplementedError  # input only


@extend_schema_field(OpenApiTypes.BOOL)
class QueryBooleanField(serializers.Field):
    """`true` or `false` as OpenAPI writes a boolean in a query string (empty: false); nothing else."""

    default_error_messages = {"invalid": "Expected true or false."}

    def to_internal_value(self, data):
        if data in ("true", "false", ""):
            return data == "true"
        self.fail("invalid")

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.BOOL)
class JSONBooleanField(serializers.Field):
    """A JSON `true` or `false` in a body; not DRF's strings and numbers ("yes", 1), which the schema does not allow."""

    default_error_messages = {"invalid": "Expected true or false (a JSON boolean)."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value
