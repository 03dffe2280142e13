"""`/api/v1/webhook/`: a user's signed webhooks (create, list, get, turn off and on, delete), their deliveries."""

import contextlib

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action as route
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from nodeclusters.choices import EventType, WebhookDeliveryState
from nodeclusters.models import Action, Webhook, WebhookDelivery
from nodeclusters.services.webhooks import (
    MAX_URL_LENGTH,
    URL_EXAMPLE,
    WEBHOOK_URL_PATTERN,
    WebhookTargetRefused,
    webhook_create,
    webhook_delete,
    webhook_set_active,
    webhook_uri,
)
from nodeclusters.wire import uris
from nodeclusters.wire.dates import format_rfc2822
from nodeclusters.wire.grammar import fullmatch

from .fields import JSONBooleanField
from .schema import DateField, errors
from .serializers import StrictSerializer
from .views.base import ACTION_HEADER, TutumViewSetMixin

URL_RULE = (
    f"An http(s) URL of at most {MAX_URL_LENGTH} characters: an ASCII host name (xn-- form for IDNs) or IPv4 "
    "address, optional port, path and query; no user name, password or fragment. Its host must resolve, and not "
    "to a private, loopback, link-local, multicast, reserved or unspecified address unless the operator set "
    "WEBHOOK_ALLOW_PRIVATE_TARGETS."
)


def deliveries_uri(webhook_uuid) -> str:
    return f"{webhook_uri(webhook_uuid)}delivery/"


@extend_schema_field(
    {"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": WEBHOOK_URL_PATTERN, "example": URL_EXAMPLE}
)
class WebhookURLField(serializers.Field):
    """The target as sent, checked against the document's pattern (DNS is the service's to check)."""

    default_error_messages = {"invalid": URL_RULE}

    def to_internal_value(self, data):
        if isinstance(data, str) and len(data) <= MAX_URL_LENGTH and fullmatch(WEBHOOK_URL_PATTERN, data):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": EventType.values}, "example": ["node"]})
class EventTypesField(serializers.Field):
    """A list of event types, each once or more (kept once); one message naming the valid types otherwise."""

    default_error_messages = {"invalid": f"Expected a list of event types, each one of: {', '.join(EventType.values)}."}

    def to_internal_value(self, data):
        if isinstance(data, list) and all(isinstance(item, str) and item in EventType.values for item in data):
            return sorted(set(data))
        self.fail("invalid")

    def to_representation(self, value):
        return value


class WebhookCreateSerializer(StrictSerializer):
    """Input: where to POST events, and which types (none or an empty list: all)."""

    url = WebhookURLField(help_text=URL_RULE)
    types = EventTypesField(
        required=False,
        default=list,
        help_text="Event types to deliver (`nodecluster`, `node`, `action`); empty or left out: all of them.",
    )


class WebhookUpdateSerializer(StrictSerializer):
    """Input of a PATCH: turn the webhook on or off."""

    active = JSONBooleanField(
        required=False,
        help_text=(
            "false: stop delivering (pending deliveries fail). true: deliver again, from the events after this call "
            "(none from while it was off); the URL is checked again as at creation. Left out: unchanged."
        ),
    )


class WebhookSerializer(serializers.Serializer):
    """Output: a webhook. The signing secret is never in it (only in the answer to its creation)."""

    uuid = serializers.UUIDField()
    resource_uri = serializers.CharField(help_text="/api/v1/webhook/<uuid>/")
    url = serializers.CharField()
    types = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))
    active = serializers.BooleanField(
        help_text="false once its owner turned it off, or after failing for WEBHOOK_GIVE_UP_SECONDS"
    )
    deliveries = serializers.CharField(help_text="URI of the webhook's deliveries")
    created_datetime = DateField()
    failing_since = DateField(help_text="Since when every delivery attempt has failed; null while they succeed")
    disabled_datetime = DateField()
    disabled_reason = serializers.CharField()

    def to_representation(self, webhook: Webhook) -> dict:
        return {
            "uuid": str(webhook.uuid),
            "resource_uri": webhook_uri(webhook.uuid),
            "url": webhook.url,
            "types": webhook.types,
            "active": webhook.active,
            "deliveries": deliveries_uri(webhook.uuid),
            "created_datetime": format_rfc2822(webhook.created_at),
            "failing_since": format_rfc2822(webhook.failing_since),
            "disabled_datetime": format_rfc2822(webhook.disabled_at),
            "disabled_reason": webhook.disabled_reason,
        }


class WebhookCreatedSerializer(WebhookSerializer):
    """Output of a creation: the webhook and, this once, its signing secret."""

    secret = serializers.CharField(
        help_text="The HMAC-SHA256 key of `X-Tutum-Signature`. Shown only here: keep it, it cannot be read again."
    )

    def to_representation(self, created: tuple[Webhook, str]) -> dict:
        webhook, secret = created
        return {**super().to_representation(webhook), "secret": secret}


class WebhookDeliverySerializer(serializers.Serializer):
    """Output: one event's delivery to a webhook."""

    uuid = serializers.UUIDField()
    event_id = serializers.IntegerField(help_text="The event's `id`, as the Stream API gives it")
    type = serializers.ChoiceField(choices=EventType.choices)
    resource_uri = serializers.CharField(help_text="The object the event is about")
    state = serializers.ChoiceField(choices=WebhookDeliveryState.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's last HTTP status")
    last_error = serializers.CharField(help_text="Why the last attempt failed; empty once delivered")
    created_datetime = DateField()
    next_attempt_datetime = DateField(help_text="When it is tried next; null once delivered or given up")
    delivered_datetime = DateField()

    def to_representation(self, delivery: WebhookDelivery) -> dict:
        pending = delivery.state == WebhookDeliveryState.PENDING
        return {
            "uuid": str(delivery.uuid),
            "event_id": delivery.event_id,
            "type": delivery.payload.get("type"),
            "resource_uri": delivery.payload.get("resource_uri"),
            "state": delivery.state,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            "created_datetime": format_rfc2822(delivery.created_at),
            "next_attempt_datetime": format_rfc2822(delivery.next_attempt_at) if pending else None,
            "delivered_datetime": format_rfc2822(delivery.delivered_at),
        }


@contextlib.contextmanager
def _refusals_name_the_url():
    """A target the service refuses (scheme, DNS, a private address) is a 400 on the `url` field."""
    try:
        yield
    except WebhookTargetRefused as refusal:
        raise ValidationError({"url": [refusal.detail]}) from None


#: Webhook writes record an action like every other write, and name it in this header.
WEBHOOK_ACTION_HEADER = OpenApiParameter(
    ACTION_HEADER,
    {"type": "string", "pattern": r"^/api/v1/action/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/$"},
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 201, 204],
    description="Resource URI of the action this call recorded, e.g. /api/v1/action/<uuid>/",
)


class WebhookViewSet(TutumViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/v1/webhook/`: create (the secret is shown once), list, get, delete, and a webhook's deliveries."""

    serializer_class = WebhookSerializer
    lookup_field = "uuid"

    def get_queryset(self) -> QuerySet:
        return Webhook.objects.filter(owner=self.request.user).order_by("-created_at", "uuid")

    @extend_schema(summary="List your webhooks", responses={200: WebhookSerializer(many=True), **errors(400)})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a webhook", responses={200: WebhookSerializer, **errors(404)})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a webhook: every event of your objects is POSTed to `url`, signed with `secret`",
        description=(
            "Each event (the Stream API's JSON, with the same `id`) is POSTed with `X-Tutum-Event-Id` and "
            '`X-Tutum-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>`, at least '
            "once, in order per object, retried with exponential backoff for up to a day."
        ),
        request=WebhookCreateSerializer,
        parameters=[WEBHOOK_ACTION_HEADER],
        responses={
            201: OpenApiResponse(WebhookCreatedSerializer, "Created; the only answer that shows the secret"),
            **errors(400, 413, 415),
        },
    )
    def create(self, request):
        context = self.request_context()
        data = self.validated(WebhookCreateSerializer)
        with _refusals_name_the_url():
            webhook, secret, action = webhook_create(owner=request.user, context=context, **data)
        return self._written(WebhookCreatedSerializer((webhook, secret)).data, action, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Turn a webhook off, or back on after it was disabled",
        request=WebhookUpdateSerializer,
        parameters=[WEBHOOK_ACTION_HEADER],
        responses={200: WebhookSerializer, **errors(400, 404, 413, 415)},
    )
    def partial_update(self, request, uuid=None):
        context = self.request_context()
        uuid = self.get_object().uuid
        data = self.validated(WebhookUpdateSerializer)
        with _refusals_name_the_url():
            webhook, action = webhook_set_active(webhook_uuid=uuid, owner=request.user, context=context, **data)
        return self._written(WebhookSerializer(webhook).data, action, status.HTTP_200_OK)

    @extend_schema(
        summary="Delete a webhook (deliveries not made yet never will be)",
        parameters=[WEBHOOK_ACTION_HEADER],
        responses={204: OpenApiResponse(None, "Deleted"), **errors(400, 404, 413, 415)},
    )
    def destroy(self, request, uuid=None):
        context = self.request_context()
        action = webhook_delete(webhook_uuid=self.get_object().uuid, owner=request.user, context=context)
        return self._written(None, action, status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="List a webhook's deliveries, newest event first",
        responses={200: WebhookDeliverySerializer(many=True), **errors(400, 404)},
    )
    @route(detail=True, methods=["get"])
    def delivery(self, request, uuid=None):
        webhook = self.get_object()
        page = self.paginate_queryset(WebhookDelivery.objects.filter(webhook=webhook).order_by("-event_id"))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @staticmethod
    def _written(data, action: Action, code: int) -> Response:
        return Response(data, status=code, headers={ACTION_HEADER: uris.action_uri(action.uuid)})
