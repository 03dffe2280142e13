"""OpenAPI description of the wire format (drf-spectacular): auth schemes, list envelope, error bodies, field shapes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from .uris import EXAMPLES

DATE_EXAMPLE = "Tue, 16 Sep 2014 17:01:15 +0000"
RFC2822_PATTERN = r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$"


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


_ERROR_TEXT = {
    400: "Invalid request; `error` says what to fix",
    401: "Missing or bad credentials",
    404: "No such object (or not yours)",
    409: "Not allowed in the object's current state; `error` names the state and the allowed operations",
    413: "Body too large",
    415: "Body is not JSON",
    429: "Throttled; see the Retry-After header",
}


def errors(*codes: int) -> dict:
    """Error responses for `extend_schema(responses=...)`; 401 and 429 apply everywhere."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[code]) for code in sorted({*codes, 401, 429})
    }
