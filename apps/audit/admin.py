"""The audit log in the admin: read-only for everyone (no add, change or delete, superusers
included), filterable by action, actor and date."""

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created", "action", "actor_name", "address", "summary")
    list_filter = ("action", ("actor", admin.RelatedOnlyFieldListFilter), "created")
    date_hierarchy = "created"
    search_fields = ("actor_name", "summary", "target_repr", "address")
    list_select_related = ("actor",)
    fields = ("created", "action", "actor", "actor_name", "address", "target_type", "target_id",
              "target_repr", "summary", "changes_display", "diff_display")
    readonly_fields = fields
    actions = None

    class Media:
        css = {"all": ("audit/audit.css",)}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="changes")
    def changes_display(self, entry):
        return format_html('<pre data-testid="audit-changes">{}</pre>', json.dumps(entry.changes, indent=2, ensure_ascii=False))

    @admin.display(description="diff")
    def diff_display(self, entry):
        if not entry.diff:
            return "–"
        rows = format_html_join(
            "\n", '<span class="{}">{}</span>',
            ((_line_class(line), line) for line in entry.diff.splitlines()),
        )
        return format_html('<pre class="audit-diff" data-testid="audit-diff">{}</pre>', rows)


def _line_class(line):
    if line.startswith(("+++", "---")):
        return "diff-file"
    return {"+": "diff-add", "-": "diff-del", "@": "diff-hunk"}.get(line[:1], "diff-same")
