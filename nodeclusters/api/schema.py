"""OpenAPI description of the wire format (drf-spectacular): auth schemes, list envelope, error bodies, field shapes,
what every input accepts, and the links from an answer to the operations on the objects it names.

What an input accepts is written here once, as the JSON Schema the document states (patterns, ranges, lengths); the
serializers and filters check input against these same patterns, so the document and the server cannot disagree.
Patterns use only what ECMA-262 (validators, generated clients) and Python's `re` read alike: character classes
with `\\xNN`/`\\uNNNN` escapes and `[0-9]`, never `\\d`, `\\s` or `\\w`, whose meanings differ between the two.
"""

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from nodeclusters.catalog import CATALOG
from nodeclusters.wire.grammar import (
    DATE_EXAMPLE,
    RFC2822_PATTERN,
    TAG_FORBIDDEN,
    catalog_uri_pattern,
    integer_schema,
    text_pattern,
    uri_input_pattern,
)
from nodeclusters.wire.uris import EXAMPLES

# --- auth and shared field shapes ---------------------------------------------------------------------------------


class TutumAuthenticationScheme(OpenApiAuthenticationExtension):
    """Either `Authorization: ApiKey <username>:<apikey>` or HTTP Basic with the API key as password."""

    target_class = "nodeclusters.api.authentication.ApiKeyAuthentication"
    name = ["ApiKeyAuth", "BasicAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"ApiKeyAuth": []}, {"BasicAuth": []}]  # one or the other, not both

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`ApiKey <username>:<apikey>`",
            },
            {"type": "http", "scheme": "basic", "description": "Username and API key as the password."},
        ]


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "pattern": RFC2822_PATTERN,
        "example": DATE_EXAMPLE,
        "description": "RFC 2822 date in UTC, or null when unset",
    }
)
class DateField(serializers.Field):
    """Schema marker for an RFC 2822 date (rendering happens in the output serializers)."""


def uri_field(kind: str, *, nullable: bool = False):
    """Schema marker for a resource URI of `kind`."""

    @extend_schema_field(
        {"type": "string", "nullable": nullable, "pattern": rf"^/api/v1/{kind}/.+/$", "example": EXAMPLES[kind]}
    )
    class ResourceURIField(serializers.Field):
        pass

    return ResourceURIField()


def uri_list(kind: str):
    return serializers.ListField(child=uri_field(kind))


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "example": [{"name": "tag-1"}],
    }
)
class TagsField(serializers.Field):
    """Schema marker for Tutum's tag lists."""


class ErrorSerializer(serializers.Serializer):
    """Every 4xx/5xx body: a message a person can act on, and per-field detail for validation errors."""

    error = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Per-field messages (validation errors only)")
    reasons = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='Preflight refusals (409): {"code", "message", ...figures} each, code one of choices.ReasonCode',
    )


_ERROR_TEXT = {
    400: "Invalid request; `error` says what to fix",
    401: "Missing or bad credentials",
    404: "No such object (or not yours)",
    406: "The Accept header asks only for media types this operation cannot answer with",
    409: "Not allowed in the object's current state; `error` names the state and the allowed operations",
    413: "Body too large",
    415: "Body is not JSON",
    429: "Throttled; see the Retry-After header",
}


def errors(*codes: int, only_json: bool = False) -> dict:
    """Error responses for `extend_schema(responses=...)`; 401, 406 and 429 apply everywhere.

    `only_json` for an operation that also answers in another media type: its errors are JSON all the same.
    """
    return {
        ((code, "application/json") if only_json else code): OpenApiResponse(
            ErrorSerializer, description=_ERROR_TEXT[code]
        )
        for code in sorted({*codes, 401, 406, 429})
    }


# --- links: from an answer to the operations on the objects it names ---------------------------------------------

#: The operations on one object, by resource: operationId -> what it does.
OBJECT_OPERATIONS = {
    "nodecluster": {
        "v1_nodecluster_retrieve": "Get the node cluster",
        "v1_nodecluster_partial_update": "Scale, retag or rename the node cluster",
        "v1_nodecluster_destroy": "Terminate the node cluster",
        "v1_nodecluster_deploy_create": "Deploy the node cluster",
        "v1_nodecluster_docker_upgrade_create": "Upgrade Docker on the node cluster's nodes",
    },
    "node": {
        "v1_node_retrieve": "Get the node",
        "v1_node_partial_update": "Rename or retag the node",
        "v1_node_destroy": "Terminate the node",
        "v1_node_health_check_create": "Check the node",
        "v1_node_docker_upgrade_create": "Upgrade Docker on the node",
    },
    "action": {
        "v1_action_retrieve": "Get the action",
        "v1_action_logs_retrieve": "Read the action's log",
        "v1_action_cancel_create": "Cancel the action",
        "v1_action_retry_create": "Retry the action",
    },
}
#: Runtime expressions for the uuid of an object a response names. Regex extractors (Schemathesis' `#regex:`, one
#: group) take a uuid out of a resource URI; no `{n}` quantifier, whose braces would read as an embedded expression.
THE_OBJECT = "$response.body#/uuid"
FIRST_LISTED = "$response.body#/objects/0/uuid"
ITS_ACTION = "$response.header.X-Tutum-Action-URI#regex:^/api/v1/action/([0-9a-f-]+)/$"


def uri_list_item(kind: str, pointer: str) -> str:
    """The uuid in the resource URI at `pointer` of the body (e.g. a cluster's first node)."""
    return f"$response.body#{pointer}#regex:^/api/v1/{kind}/([0-9a-f-]+)/$"


#: The path parameters of each catalog resource, in the order its resource URI names them.
CATALOG_PARAMETERS = {
    "provider": ("name",),
    "region": ("provider", "name"),
    "az": ("provider", "region", "name"),
    "nodetype": ("provider", "name"),
}


def catalog_links(kind: str, pointer: str = "/objects/0/resource_uri") -> dict:
    """A link to the catalog object whose resource URI is at `pointer` (by default: the first listed)."""
    names = CATALOG_PARAMETERS[kind]
    parameters = {}
    for index, name in enumerate(names):
        before = "[^/]+/" * index
        parameters[name] = f"$response.body#{pointer}#regex:^/api/v1/{kind}/{before}([^/]+)/"
    return {
        f"{kind}_retrieve.the_first": {
            "operationId": f"v1_{kind}_retrieve",
            "parameters": parameters,
            "description": f"Get the {kind}: the first listed",
        }
    }


def links(kind: str, uuid_expression: str, *, via: str) -> dict:
    """OpenAPI links to every operation on one object of `kind`, whose uuid `uuid_expression` takes from the
    response; `via` says where it comes from, e.g. "the created cluster"."""
    return {
        # Link names: letters, digits and `._-` only (OpenAPI's components map key rule).
        f"{operation_id.removeprefix('v1_')}.{via.replace(' ', '_')}": {
            "operationId": operation_id,
            "parameters": {"uuid": uuid_expression},
            "description": f"{summary}: {via}",
        }
        for operation_id, summary in OBJECT_OPERATIONS[kind].items()
    }


class LinkedResponse(OpenApiResponse):
    """A response with OpenAPI links, which drf-spectacular's own OpenApiResponse cannot carry."""

    def __init__(self, response=None, description: str = "", *, links: dict):
        super().__init__(response=response, description=description)
        self.links = links


# --- request bodies -----------------------------------------------------------------------------------------------

MAX_TAGS = 64
MAX_NAME_LENGTH = 128
#: Free text (names, nicknames): no NUL; what is stored is trimmed of surrounding whitespace.
NAME_PATTERN = text_pattern()
BLANK_NAME_PATTERN = text_pattern(blank=True)
TAG_NAME_PATTERN = text_pattern(forbidden=TAG_FORBIDDEN)
PROVIDER_OPTION_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^[^\x00]*$",
}
PROVIDER_OPTION_LIST = {"type": "array", "maxItems": 16, "items": PROVIDER_OPTION_TEXT}
#: AWS's options; every other provider takes none (`{}` or null).
AWS_PROVIDER_OPTIONS = {
    "type": "object",
    "nullable": True,
    "additionalProperties": False,
    "properties": {
        "vpc": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": PROVIDER_OPTION_TEXT,
                "subnets": PROVIDER_OPTION_LIST,
                "security_groups": PROVIDER_OPTION_LIST,
            },
        },
        "iam": {
            "type": "object",
            "additionalProperties": False,
            "required": ["instance_profile_name"],
            "properties": {"instance_profile_name": PROVIDER_OPTION_TEXT},
        },
    },
    "description": (
        "AWS only: the VPC and IAM instance profile of the nodes; other providers take none (`{}` or null, "
        "the same as leaving it out)."
    ),
    "example": {"vpc": {"id": "vpc-0a1b", "subnets": ["subnet-1"], "security_groups": ["sg-1"]}},
}
NO_PROVIDER_OPTIONS = {"type": "object", "nullable": True, "maxProperties": 0}


def tag_list_schema() -> dict:
    """Tags as requests give them: `[{"name": "web"}]` (an `origin` key is ignored) or `["web"]`."""
    name = {
        "type": "string",
        "maxLength": MAX_NAME_LENGTH,
        "pattern": TAG_NAME_PATTERN,
        "description": "At most 128 characters, not only whitespace (which is trimmed around it); no control "
        "characters, line separators or bidirectional controls.",
    }
    return {
        "type": "array",
        "maxItems": MAX_TAGS,
        "items": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": name, "origin": {"description": "Ignored (Tutum's clients send it)"}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
                name,
            ]
        },
        "example": [{"name": "tag-1"}],
    }


def provider_variants() -> list[dict]:
    """One branch per provider: a region and node type of that provider's catalog, and the options it takes."""
    return [
        {
            "properties": {
                "region": {"pattern": catalog_uri_pattern("region", provider)},
                "node_type": {"pattern": catalog_uri_pattern("nodetype", provider)},
                **({} if provider == "aws" else {"provider_options": NO_PROVIDER_OPTIONS}),
            },
        }
        for provider in CATALOG
    ]


def max_nodes_per_cluster() -> int:
    return getattr(settings, "MAX_NODES_PER_CLUSTER", 1000)


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """`fields.TextField`: its length and pattern."""

    target_class = "nodeclusters.api.fields.TextField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        blank = field.pattern == BLANK_NAME_PATTERN
        return {
            "type": "string",
            "maxLength": field.max_length,
            "pattern": field.pattern,
            "description": f"At most {field.max_length} characters, no NUL"
            + ("" if blank else ", not only whitespace")
            + "; the whitespace around it is trimmed.",
        }


class NumberFieldSchema(OpenApiSerializerFieldExtension):
    """`fields.NumberField`: an integer in its range, or that number as text."""

    target_class = "nodeclusters.api.fields.NumberField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = integer_schema(field.min_value, field.max_value)
        return {**schema, "nullable": True} if field.allow_null else schema


class NodeURIListFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "nodeclusters.api.fields.NodeURIListField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "array",
            "maxItems": max_nodes_per_cluster(),
            "uniqueItems": True,
            "items": {"type": "string", "pattern": uri_input_pattern("node"), "example": EXAMPLES["node"]},
            "description": "Resource URIs of live nodes of this cluster, terminated before any other",
        }


class QueryNumberFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "nodeclusters.api.fields.QueryNumberField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": self.target.min_value, "maximum": self.target.max_value}


class TagListFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "nodeclusters.api.fields.TagListField"

    def map_serializer_field(self, auto_schema, direction):
        return tag_list_schema()


class CatalogURIFieldSchema(OpenApiSerializerFieldExtension):
    """A region or node type in a request. Its pattern is in the body's `provider_variants`, which also ties it to
    the other's provider: a second pattern here would leave generators two regexes to satisfy at once."""

    target_class = "nodeclusters.api.fields.CatalogURIField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        kind = self.target.kind
        listing = "/api/v1/region/" if kind == "region" else "/api/v1/nodetype/"
        return {
            "type": "string",
            "example": EXAMPLES[kind],
            "description": f"Resource URI (or full URL) of a {kind} listed by GET {listing}, of the same provider "
            "as the other; an operator may have made it unavailable.",
        }


class ProviderOptionsFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "nodeclusters.api.fields.ProviderOptionsField"

    def map_serializer_field(self, auto_schema, direction):
        return AWS_PROVIDER_OPTIONS


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Request bodies refuse every field they do not list; a new cluster's region, node type and options must
    belong to one provider."""

    target_class = "nodeclusters.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        if type(self.target).__name__ == "NodeClusterCreateSerializer":
            schema["anyOf"] = provider_variants()
        if type(self.target).__name__ == "CloudAccountLinkSerializer":
            schema["oneOf"] = credential_variants()
        return schema


#: The credentials each kind of account takes (DigitalOcean and the simulated clouds: a token; AWS: a key or a role).
CREDENTIAL_KINDS = (("token",), ("access_key_id", "secret_access_key"), ("role_arn", "external_id"))


def credential_variants() -> list[dict]:
    """Exactly one kind of credentials in a link's body, with no field of another kind."""
    variants = []
    for fields in CREDENTIAL_KINDS:
        others = [name for kind in CREDENTIAL_KINDS if kind != fields for name in kind]
        variants.append({"required": list(fields), "not": {"anyOf": [{"required": [name]} for name in others]}})
    return variants
