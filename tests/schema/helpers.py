"""The OpenAPI document as data, and checks of real responses against it with a JSON Schema validator."""

import json
from functools import cache

from jsonschema import Draft4Validator, FormatChecker

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Keys whose value is a map of names to schemas, a schema, or a list of schemas; everything else is a literal.
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
# OpenAPI 3.0 keywords that JSON Schema does not have (`nullable` is translated, the others carry no constraint).
_OPENAPI_ONLY = ("nullable", "example", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "deprecated")


@cache
def _generated() -> str:
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenApiJsonRenderer().render(schema, renderer_context={}).decode()


def generate_openapi() -> dict:
    """The schema drf-spectacular generates, as plain JSON data (a fresh copy each call)."""
    return json.loads(_generated())


def operations(openapi: dict) -> list[tuple[str, str]]:
    """Every (METHOD, path template) the schema documents."""
    return sorted(
        (method.upper(), path) for path, item in openapi["paths"].items() for method in item if method in HTTP_METHODS
    )


def to_json_schema(schema, *, strict: bool):
    """An OpenAPI 3.0 schema object as JSON Schema.

    OpenAPI 3.0's `nullable: true` is not JSON Schema: it becomes a `null` type (or an `anyOf` with null around a
    `$ref`/`allOf`). With `strict`, objects that list their properties refuse undocumented ones, so a field the
    server sends but the schema does not describe is caught too.
    """
    if not isinstance(schema, dict):
        return schema  # `additionalProperties: true` and the like
    converted = {}
    for key, value in schema.items():
        if key in _OPENAPI_ONLY:
            continue
        if key in _SCHEMA_MAPS:
            converted[key] = {name: to_json_schema(sub, strict=strict) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES:
            converted[key] = to_json_schema(value, strict=strict)
        elif key in _SCHEMA_LISTS:
            converted[key] = [to_json_schema(sub, strict=strict) for sub in value]
        else:
            converted[key] = value
    if strict and "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    if schema.get("nullable") is True:
        if isinstance(converted.get("type"), str):
            converted["type"] = [converted["type"], "null"]
            if "enum" in converted and None not in converted["enum"]:
                converted["enum"] = [*converted["enum"], None]
        else:
            converted = {"anyOf": [{"type": "null"}, converted]}
    return converted


class ResponseChecker:
    """Checks a response against what the schema declares for its operation and status code."""

    def __init__(self, openapi: dict):
        self.openapi = openapi
        self.components = {
            name: to_json_schema(schema, strict=True) for name, schema in openapi["components"]["schemas"].items()
        }
        self._validators: dict[tuple[str, str, str, str], Draft4Validator] = {}

    def operation(self, method: str, template: str) -> dict:
        return self.openapi["paths"][template][method.lower()]

    def validator(self, schema: dict) -> Draft4Validator:
        # `$ref: #/components/schemas/X` resolves against the root, so the components ride along in it.
        root = {**to_json_schema(schema, strict=True), "components": {"schemas": self.components}}
        return Draft4Validator(root, format_checker=FormatChecker())

    def validate_body(self, declared: dict, response, *, where: str):
        """The parsed body, after checking its media type and shape against one declared response."""
        content = declared.get("content") or {}
        if not content:
            assert response.content == b"", f"{where}: the schema declares no body, got {response.content[:300]!r}"
            return None
        media_type = response.get("Content-Type", "").split(";")[0].strip()
        assert media_type in content, f"{where}: Content-Type {media_type!r}, the schema declares {sorted(content)}"
        body = json.loads(response.content)
        validator = self.validator(content[media_type]["schema"])
        problems = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
        assert not problems, f"{where}: the body breaks the schema:\n" + "\n".join(
            f"  at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}" for error in problems[:20]
        )
        return body

    def check(self, method: str, template: str, response):
        """The parsed body; fails unless the status is declared for the operation and the body matches its schema."""
        declared = self.operation(method, template)["responses"]
        status = str(response.status_code)
        where = f"{method.upper()} {template} -> {status}"
        assert status in declared, (
            f"{where}: status not declared for this operation (declared: {sorted(declared)}); "
            f"body {response.content[:300]!r}"
        )
        return self.validate_body(declared[status], response, where=where)

    def check_error_shape(self, response, *, where: str) -> dict:
        """For answers outside the documented operations (e.g. 405): the body is the schema's Error."""
        return self.validate_body(
            {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            response,
            where=where,
        )
