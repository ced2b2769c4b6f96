from django.contrib import admin

from apps.sharing import services
from apps.sharing.models import Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Staff see who shared what with whom, and can revoke a link (the copies go with it)."""

    list_display = ("title", "owner", "created", "revoked")
    list_filter = ("revoked",)
    search_fields = ("title", "owner__username")
    readonly_fields = ("owner", "conversation", "title", "model_key", "created", "revoked")
    fields = (*readonly_fields, "users", "groups")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a share is a snapshot its owner takes from the chat

    @admin.action(description="Revoke the selected links")
    def revoke(self, request, queryset):
        for share in queryset:
            services.revoke_share(share=share)
        self.message_user(request, f"{queryset.count()} link(s) revoked.")
