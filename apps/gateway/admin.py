from django.contrib import admin, messages

from apps.gateway.models import ApiKey
from apps.gateway.services import revoke_keys


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every user's keys: list and revoke. Keys are created by their users only (the secret is
    shown once, to them); who may have keys is the group permission "Can create and use personal
    API keys" (Groups → permissions)."""

    list_display = ("prefix", "name", "user", "created", "expires", "last_used", "revoked")
    list_filter = ("revoked", "expires")
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = ("user", "name", "prefix", "created", "expires", "last_used", "revoked", "revoked_by")
    exclude = ("digest",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = revoke_keys(queryset=queryset, by=request.user)
        self.message_user(request, f"Revoked {count} key{'s' if count != 1 else ''}.", messages.SUCCESS)
