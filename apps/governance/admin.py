"""Admin pages for the limits an admin sets per user and per group."""

from django.contrib import admin

from apps.governance.models import RateLimit


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "group", "answers_per_minute", "answers_at_once", "sockets")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    fieldsets = (
        (None, {"fields": ("user", "group"), "description": (
            "One user or one group. A user's own row wins over their groups'; among groups the "
            "most generous value counts; empty fields inherit the server's defaults. Processes "
            "apply a change within 10 seconds."
        )}),
        ("Limits", {"fields": ("answers_per_minute", "answers_at_once", "sockets")}),
    )
