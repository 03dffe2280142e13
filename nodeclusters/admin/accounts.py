"""API keys (shown once, when made) and the users' cloud accounts."""

from django import forms
from django.contrib import admin, messages

from .. import services
from ..models import ApiKey, CloudAccount


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
