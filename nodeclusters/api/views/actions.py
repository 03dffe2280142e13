"""`/api/v1/action/`: the audit trail, its logs, and cancel and retry."""

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action as route
from rest_framework.response import Response
from rest_framework.settings import api_settings

from nodeclusters import selectors, services
from nodeclusters.filtersets import ActionFilterSet

from .. import conditional, serializers
from ..conditional import if_match
from ..renderers import PlainTextRenderer, errors_as_json
from ..schema import FIRST_LISTED, errors, links
from .base import ACTION_ITSELF, ACTION_ON_CLUSTER, ACTION_ON_NODE, TutumViewSetMixin, accepted, found, write_schema


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
