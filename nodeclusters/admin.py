"""The operators' dashboard: clusters, nodes, actions, API keys and the catalog, with writes through the services."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from . import services
from .api.serializers import MAX_NODES_PER_CLUSTER
from .choices import NODE_UP_STATES, NodeClusterState, NodeState
from .exceptions import ServiceError
from .models import (
    Action,
    ActionStep,
    ApiKey,
    AvailabilityZone,
    CloudAccount,
    Node,
    NodeCluster,
    NodeType,
    Provider,
    Region,
)

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


class NodeInline(ReadOnlyInline):
    model = Node
    fields = [
        "uuid",
        "state",
        "public_ip",
        "instance_id",
        "availability_zone",
        "last_seen",
        "failure_reason_code",
        "failure_reason",
    ]
    readonly_fields = fields
    ordering = ["created_at"]


class ActionStepInline(ReadOnlyInline):
    """An action's per-node steps (its `steps` in the API), with the reason code of those that failed."""

    model = ActionStep
    fields = ["node", "step", "state", "reason_code", "message", "start_date", "end_date"]
    readonly_fields = fields
    ordering = ["id"]
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("node")  # each row links its node


@admin.display(description="Logs")
def log_text(action: Action):
    """The action's log as preformatted lines, one per step."""
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', action.logs)


class ActionInline(ReadOnlyInline):
    model = Action
    fk_name = "node_cluster"
    fields = ["action", "state", "start_date", "end_date", log_text]
    readonly_fields = fields
    ordering = ["-start_date"]


class ScaleForm(forms.Form):
    target_num_nodes = forms.IntegerField(min_value=0, max_value=MAX_NODES_PER_CLUSTER, label="Target number of nodes")


@admin.register(NodeCluster)
class NodeClusterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "provider",
        "region_name",
        "node_type_name",
        "target_num_nodes",
        "current_nodes",
        "badge",
        "deployed_datetime",
    ]
    list_filter = ["state", "region__provider", "region"]
    search_fields = ["name", "nickname"]
    list_select_related = ["owner", "region__provider", "node_type"]
    readonly_fields = [
        "uuid",
        "owner",
        "state",
        "node_type",
        "region",
        "disk",
        "target_num_nodes",
        "tags",
        "provider_options",
        "current_action",
        "created_at",
        "updated_at",
        "deployed_datetime",
        "destroyed_datetime",
        "name",
    ]
    fields = [*readonly_fields, "nickname"]
    inlines = [NodeInline, ActionInline]
    actions = ["deploy_selected", "scale_selected", "terminate_selected"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(current_num_nodes=Count("nodes", filter=Q(nodes__state__in=NODE_UP_STATES)))
        )

    def get_search_results(self, request, queryset, search_term):
        """Name and nickname as usual, plus a uuid prefix (what the API's uuid__startswith filter takes)."""
        results, distinct = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if term and all(char in "0123456789abcdef-" for char in term):
            results = results | queryset.filter(uuid__istartswith=term)
        return results, distinct

    def has_add_permission(self, request):
        return False  # clusters are created through the API, by their owner

    def has_delete_permission(self, request, obj=None):
        return False  # terminate instead: deleting rows would leak the cloud instances

    @admin.display(description="Provider", ordering="region__provider__name")
    def provider(self, cluster):
        return cluster.region.provider.name

    @admin.display(description="Region", ordering="region__name")
    def region_name(self, cluster):
        return cluster.region.name

    @admin.display(description="Node type", ordering="node_type__name")
    def node_type_name(self, cluster):
        return cluster.node_type.name

    @admin.display(description="Current nodes", ordering="current_num_nodes")
    def current_nodes(self, cluster):
        return cluster.current_num_nodes

    @admin.display(description="State", ordering="state")
    def badge(self, cluster):
        return state_badge(cluster.state)

    def save_model(self, request, obj, form, change):
        """The one editable field (nickname) goes through the service like an API PATCH."""
        if "nickname" in form.changed_data:
            self._run(request, obj, services.node_cluster_update, nickname=obj.nickname)

    def _run(self, request, cluster, service, **kwargs) -> bool:
        try:
            service(node_cluster_uuid=cluster.uuid, owner=cluster.owner, context=admin_context(request), **kwargs)
        except ServiceError as error:
            self.message_user(request, f"{cluster.name}: {error.detail}", messages.ERROR)
            return False
        return True

    def _run_for_each(self, request, queryset, service, verb: str, **kwargs) -> None:
        done = sum(self._run(request, cluster, service, **kwargs) for cluster in queryset.select_related("owner"))
        if done:
            self.message_user(request, f"{verb} {done} node cluster(s).", messages.SUCCESS)

    @admin.action(description="Deploy selected node clusters", permissions=["change"])
    def deploy_selected(self, request, queryset):
        self._run_for_each(request, queryset, services.node_cluster_deploy, "Deploying")

    @admin.action(description="Scale selected node clusters to N nodes", permissions=["change"])
    def scale_selected(self, request, queryset):
        if "apply" in request.POST:
            form = ScaleForm(request.POST)
            if form.is_valid():
                self._run_for_each(
                    request,
                    queryset,
                    services.node_cluster_update,
                    "Scaling",
                    target_num_nodes=form.cleaned_data["target_num_nodes"],
                )
                return HttpResponseRedirect(request.get_full_path())
        else:
            form = ScaleForm()
        return TemplateResponse(
            request,
            "admin/nodeclusters/scale.html",
            {
                **self.admin_site.each_context(request),
                "title": "Scale node clusters",
                "form": form,
                "clusters": queryset,
                "opts": self.model._meta,
                "action": "scale_selected",
            },
        )

    @admin.action(description="Terminate selected node clusters", permissions=["change"])
    def terminate_selected(self, request, queryset):
        if "apply" in request.POST:
            self._run_for_each(request, queryset, services.node_cluster_terminate, "Terminating")
            return HttpResponseRedirect(request.get_full_path())
        return TemplateResponse(
            request,
            "admin/nodeclusters/terminate.html",
            {
                **self.admin_site.each_context(request),
                "title": "Terminate node clusters",
                "clusters": queryset,
                "opts": self.model._meta,
                "action": "terminate_selected",
            },
        )


class EngineRowAdmin(admin.ModelAdmin):
    """Rows the engine writes: operators read them here and act through the cluster's actions and the API."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Node)
class NodeAdmin(EngineRowAdmin):
    list_display = [
        "uuid",
        "node_cluster",
        "owner",
        "badge",
        "public_ip",
        "instance_id",
        "region",
        "last_seen",
        "failure_reason_code",
    ]
    list_filter = ["state", "failure_reason_code", "region__provider", "region", "docker_version"]
    search_fields = ["instance_id", "public_ip", "nickname", "external_fqdn"]
    list_select_related = ["node_cluster", "owner", "region__provider"]
    readonly_fields = [field.name for field in Node._meta.fields]

    @admin.display(description="State", ordering="state")
    def badge(self, node):
        return state_badge(node.state)


@admin.register(Action)
class ActionAdmin(EngineRowAdmin):
    list_display = ["action", "object_uri", "owner", "state", "reason_code", "start_date", "end_date", "is_user_action"]
    list_filter = ["state", "action", "reason_code", "is_user_action"]
    search_fields = ["object_uri", "action", "path"]
    list_select_related = ["owner"]
    date_hierarchy = "start_date"
    readonly_fields = [*(field.name for field in Action._meta.fields), log_text]
    inlines = [ActionStepInline]


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["user", "label"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (shown once, in a session-backed confirmation message) and revoked; never shown again."""

    form = ApiKeyForm
    list_display = ["prefix", "user", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "user__username", "label"]
    list_select_related = ["user"]
    actions = ["revoke_selected"]

    def get_readonly_fields(self, request, obj=None):
        return ["prefix", "user", "created_at", "last_used_at", "revoked_at"] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail keeps the key's prefix

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["label"])
            return
        api_key, raw_key = services.api_key_create(user=form.cleaned_data["user"], label=form.cleaned_data["label"])
        # The admin's messages and history describe `obj`: give it everything the service stored.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        # Messages live in the session (MESSAGE_STORAGE), server side: never in a cookie, which is signed but not
        # encrypted and would carry the raw key to the browser and back in a header.
        self.message_user(
            request,
            f"API key for {api_key.user.get_username()}: {raw_key} (copy it now; it will not be shown again)",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


class CatalogAdmin(admin.ModelAdmin):
    """The catalog is shared by every user: only superusers change it (e.g. mark a region unavailable)."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # clusters refer to catalog rows; mark them unavailable instead


@admin.register(Provider)
class ProviderAdmin(CatalogAdmin):
    list_display = ["name", "label", "available"]
    list_editable = ["available"]
    actions = ["sync_catalog_selected"]

    @admin.action(description="Sync the catalog of selected providers from their APIs", permissions=["change"])
    def sync_catalog_selected(self, request, queryset):
        from .services.catalog_sync import catalog_sync

        for result in catalog_sync([provider.name for provider in queryset]):
            self.message_user(request, str(result), messages.ERROR if result.error else messages.SUCCESS)


@admin.register(Region)
class RegionAdmin(CatalogAdmin):
    list_display = ["name", "provider", "label", "available"]
    list_filter = ["provider", "available"]
    list_editable = ["available"]
    search_fields = ["name", "label"]


@admin.register(AvailabilityZone)
class AvailabilityZoneAdmin(CatalogAdmin):
    list_display = ["name", "region", "available"]
    list_filter = ["region__provider", "available"]
    list_editable = ["available"]


@admin.register(NodeType)
class NodeTypeAdmin(CatalogAdmin):
    list_display = ["name", "provider", "label", "cpu", "memory", "price_monthly", "alias_of", "available"]
    list_filter = ["provider", "available"]
    list_editable = ["available"]
    filter_horizontal = ["regions", "availability_zones"]
    readonly_fields = ["alias_of", "synced_at"]


@admin.register(CloudAccount)
class CloudAccountAdmin(admin.ModelAdmin):
    """Users' linked cloud accounts, read-only: users link and unlink them through the API (verified with the
    provider there). The secret is never shown, not even encrypted."""

    list_display = ["owner", "provider", "kind", "label", "hint", "verified_at"]
    list_filter = ["provider", "kind"]
    search_fields = ["owner__username", "label", "hint"]
    fields = ["owner", "provider", "kind", "label", "hint", "limits", "verified_at", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # unlinking is refused while live nodes depend on the account: the API's DELETE checks that


admin.site.site_header = "Tutum API operations"
admin.site.site_title = "Tutum API"
admin.site.index_title = "Node clusters, nodes and the catalog"

# Registered from their own module (it builds on the classes above), so autodiscovery of this one loads them.
from . import admin_webhooks  # noqa: E402, F401
