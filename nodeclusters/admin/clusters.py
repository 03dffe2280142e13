"""Clusters, with scale, deploy and terminate through the services; their nodes and actions, read-only."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from .. import services
from ..api.fields import MAX_NODES_PER_CLUSTER
from ..choices import NODE_UP_STATES
from ..exceptions import ServiceError
from ..models import Action, ActionStep, Node, NodeCluster
from .base import EngineRowAdmin, ReadOnlyInline, admin_context, state_badge


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
