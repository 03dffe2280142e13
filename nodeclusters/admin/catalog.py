"""The catalog: providers, regions, availability zones and node types."""

from django.contrib import admin, messages

from ..models import AvailabilityZone, NodeType, Provider, Region


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
        from ..services.catalog_sync import catalog_sync

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
