"""Admin pages for the limits an admin sets per user and per group."""

from django.contrib import admin

from apps.governance.models import Budget, RateLimit, RetentionPolicy


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


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "group", "period", "tokens")
    list_filter = ("period",)
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    fieldsets = (
        (None, {"fields": ("user", "group"), "description": (
            "A user (their spending), a group (its members' spending together), or neither: a "
            "default every user gets on their own. Every budget that applies is checked before a "
            "request starts; an answer already running when a budget runs out finishes."
        )}),
        ("Budget", {"fields": ("period", "tokens")}),
    )


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "group", "days")
    search_fields = ("group__name",)
    autocomplete_fields = ("group",)
    fieldsets = (
        (None, {"fields": ("group", "days"), "description": (
            "How long conversations and their images are kept after their last activity. Leave "
            "the group empty for the default. A user in several groups gets the longest of their "
            "groups' policies; a group's policy wins over the default. Without any policy "
            "conversations are kept for good. `manage.py apply_retention` deletes what is due."
        )}),
    )
