"""Routes under /api/v1/. A trailing slash is canonical (every URI we emit has one) but optional on input."""

from django.urls import re_path

from nodeclusters.wire.grammar import UUID_REGEX

from . import credentials, views, webhooks
from .errors import api_not_found

SEGMENT = r"[^/\x00]+"  # NUL never belongs in a name (PostgreSQL refuses it), so such paths are a plain 404


def route(pattern: str, view, name: str):
    return re_path(rf"^{pattern}/?$", view, name=name)


def resource(prefix: str, viewset, lookup: str, *, writable=(), detail_routes=(), detail_reads=(), name: str):
    """The list, detail and per-object routes of one resource: `detail_routes` are POSTs, `detail_reads` GETs."""
    list_methods = {"get": "list"}
    detail_methods = {"get": "retrieve"}
    if "create" in writable:
        list_methods["post"] = "create"
    if "partial_update" in writable:
        detail_methods["patch"] = "partial_update"
    if "destroy" in writable:
        detail_methods["delete"] = "destroy"
    patterns = [
        route(prefix, viewset.as_view(list_methods), f"{name}-list"),
        route(f"{prefix}/{lookup}", viewset.as_view(detail_methods), f"{name}-detail"),
    ]
    for methods, routes in (("post", detail_routes), ("get", detail_reads)):
        for path, method_name in routes:
            # The @route decorator's options (e.g. renderers), as a DRF router would pass them.
            view = viewset.as_view({methods: method_name}, **getattr(viewset, method_name).kwargs)
            patterns.append(route(f"{prefix}/{lookup}/{path}", view, f"{name}-{path}"))
    return patterns


uuid = rf"(?P<uuid>{UUID_REGEX})"

urlpatterns = [
    route("auth", views.AuthView.as_view(), "auth"),
    *resource(
        "nodecluster",
        views.NodeClusterViewSet,
        uuid,
        writable=("create", "partial_update", "destroy"),
        detail_routes=[("deploy", "deploy"), ("docker-upgrade", "docker_upgrade")],
        name="nodecluster",
    ),
    *resource(
        "node",
        views.NodeViewSet,
        uuid,
        writable=("partial_update", "destroy"),
        detail_routes=[("health-check", "health_check"), ("docker-upgrade", "docker_upgrade")],
        name="node",
    ),
    *resource(
        "action",
        views.ActionViewSet,
        uuid,
        detail_routes=[("cancel", "cancel"), ("retry", "retry")],
        detail_reads=[("logs", "logs")],
        name="action",
    ),
    *resource("provider", views.ProviderViewSet, rf"(?P<name>{SEGMENT})", name="provider"),
    route(rf"provider/(?P<name>{SEGMENT})/credentials", credentials.CloudAccountView.as_view(), "provider-credentials"),
    *resource("region", views.RegionViewSet, rf"(?P<provider>{SEGMENT})/(?P<name>{SEGMENT})", name="region"),
    *resource(
        "az",
        views.AvailabilityZoneViewSet,
        rf"(?P<provider>{SEGMENT})/(?P<region>{SEGMENT})/(?P<name>{SEGMENT})",
        name="az",
    ),
    *resource("nodetype", views.NodeTypeViewSet, rf"(?P<provider>{SEGMENT})/(?P<name>{SEGMENT})", name="nodetype"),
    *resource(
        "webhook",
        webhooks.WebhookViewSet,
        uuid,
        writable=("create", "partial_update", "destroy"),
        detail_reads=[("delivery", "delivery")],
        name="webhook",
    ),
    re_path(r"^", api_not_found),
]
