"""What the dashboard's pages share: state badges, operator-recorded actions, read-only rows."""

from django.contrib import admin
from django.utils.html import format_html

from .. import services
from ..choices import NodeClusterState, NodeState

STATE_COLOURS = {
    NodeClusterState.INIT: "#6c757d",
    NodeClusterState.DEPLOYING: "#0d6efd",
    NodeClusterState.SCALING: "#0d6efd",
    NodeClusterState.DEPLOYED: "#198754",
    NodeClusterState.PARTLY_DEPLOYED: "#fd7e14",
    NodeClusterState.EMPTY_CLUSTER: "#adb5bd",
    NodeClusterState.TERMINATING: "#dc3545",
    NodeClusterState.TERMINATED: "#343a40",
    NodeState.UNREACHABLE: "#fd7e14",
    NodeState.UPGRADING: "#0d6efd",
}


def state_badge(state: str):
    colour = STATE_COLOURS.get(state, "#6c757d")
    return format_html(
        '<span class="state-badge" style="background:{};color:#fff;padding:2px 8px;border-radius:10px">{}</span>',
        colour,
        state,
    )


def admin_context(request) -> services.RequestContext:
    """Admin writes are recorded as actions by the operator, like API calls."""
    return services.RequestContext(
        method=request.method,
        path=request.path,
        user_agent=f"admin:{request.user.get_username()}",
        ip=request.META.get("REMOTE_ADDR") or None,
    )


class ReadOnlyInline(admin.TabularInline):
    """Rows the engine owns: shown on the cluster's page, changed only through the services."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class EngineRowAdmin(admin.ModelAdmin):
    """Rows the engine writes: operators read them here and act through the cluster's actions and the API."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
