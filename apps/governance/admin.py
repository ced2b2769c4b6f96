"""Admin pages for the limits an admin sets per user and per group."""

from django.contrib import admin

from apps.governance.models import Budget, RateLimit


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
    list_display = ("__str__", "user", "group", "period", "unit", "tokens", "amount", "currency")
    list_filter = ("period", "unit")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    fieldsets = (
        (None, {"fields": ("user", "group"), "description": (
            "A user (their spending), a group (its members' spending together), or neither: a "
            "default every user gets on their own. Every budget that applies is checked before a "
            "request starts; an answer already running when a budget runs out finishes."
        )}),
        ("Budget", {"fields": ("period", "unit", "tokens", ("amount", "currency")), "description": (
            "In tokens (prompt + completion), or in a currency: the cost stored with each call "
            "at its model's price (YAML pricing or the built-in table). A currency budget counts "
            "only calls priced in its currency; models without a known price add nothing to it."
        )}),
    )
