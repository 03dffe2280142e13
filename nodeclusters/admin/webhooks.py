"""The dashboard's webhooks: listed with their state and deliveries; the signing secret is never shown."""

from django.contrib import admin

from ..models import Webhook, WebhookDelivery
from .base import EngineRowAdmin, ReadOnlyInline


class WebhookDeliveryInline(ReadOnlyInline):
    model = WebhookDelivery
    fields = [
        "event_id",
        "object_uuid",
        "state",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    ]
    readonly_fields = fields
    ordering = ["-event_id"]
    show_change_link = False


@admin.register(Webhook)
class WebhookAdmin(EngineRowAdmin):
    """Read-only: users create and delete webhooks through the API, which records an action for each."""

    list_display = ["url", "owner", "active", "types", "failing_since", "disabled_at", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "owner__username"]
    list_select_related = ["owner"]
    # Every field but `secret` (a Fernet token, but still not for display).
    fields = readonly_fields = [
        "uuid",
        "owner",
        "url",
        "types",
        "active",
        "cursor",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]
    inlines = [WebhookDeliveryInline]
