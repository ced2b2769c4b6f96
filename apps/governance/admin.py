"""Admin pages for the limits an admin sets per user and per group, and the usage dashboard."""

import csv
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from apps.azure.registry import get_registry
from apps.governance import dashboard
from apps.governance.models import Budget, RateLimit, RetentionPolicy, UsageReport


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


@admin.register(UsageReport)
class UsageDashboardAdmin(admin.ModelAdmin):
    """Staff only (the admin's own check), and the dashboard's view permission: totals, a chart
    over time, the breakdown, top users, budget status and a CSV export of the filtered usage."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("", self.admin_site.admin_view(self.dashboard_view), name="governance_usagereport_changelist")]

    def dashboard_view(self, request):
        if not (request.user.is_staff and self.has_view_permission(request)):
            raise PermissionDenied
        filters = dashboard.parse_filters(request.GET)
        if request.GET.get("format") == "csv":
            return self.csv_response(dashboard.usage_rollup(filters=filters), filters)
        report = dashboard.build_report(filters=filters)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Usage dashboard",
            "filters": filters,
            "report": report,
            "chart": dashboard.chart(report["series"], days=filters.days),
            "budgets": dashboard.budget_status(),
            "dimensions": dashboard.DIMENSIONS.items(),
            "groups": dashboard.group_choices(),
            "models": sorted({m.key for m in get_registry().all_models()} | ({filters.model} - {""})),
            "csv_query": urlencode({**filters.query(), "format": "csv"}),
        }
        return TemplateResponse(request, "admin/governance/usage_dashboard.html", context)

    def csv_response(self, rows, filters):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"lapis-usage-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response)
        written = 0
        for row in dashboard.csv_rows(rows):
            writer.writerow([_cell(value) for value in row])
            written += 1
        from apps.audit.services import record_export

        record_export(what="the usage dashboard (CSV)", rows=max(written - 1, 0), filters=filters.query())
        return response


def _cell(value):
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a ' first."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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
