"""What every API view shares: the schema inspector, the write helpers, and the schema of writes and links."""

import json

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from nodeclusters import services
from nodeclusters.models import Action
from nodeclusters.wire import uris

from .. import conditional, idempotency, serializers
from ..conditional import ConditionalRequestsMixin
from ..idempotency import IdempotentWritesMixin
from ..schema import ITS_ACTION, THE_OBJECT, LinkedResponse, links, uri_list_item

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
