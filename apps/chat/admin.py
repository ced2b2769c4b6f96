"""Admin pages for what staff need to see of background calls: failures and token usage."""

from django.contrib import admin

from apps.chat.models import BackgroundCallFailure, Summary, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by Lapis itself: staff read them, nobody edits them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BackgroundCallFailure)
class BackgroundCallFailureAdmin(ReadOnlyAdmin):
    list_display = ("created", "purpose", "model_key", "error_code", "admin_detail", "conversation", "user")
    list_filter = ("purpose", "error_code", "model_key")
    search_fields = ("admin_detail", "model_key", "conversation__id")
    date_hierarchy = "created"


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created", "purpose", "model_key", "deployment", "prompt_tokens", "completion_tokens",
        "estimated", "cost", "currency", "user", "conversation",
    )
    list_filter = ("purpose", "model_key", "estimated")
    search_fields = ("user__username", "model_key", "conversation__id")
    date_hierarchy = "created"


@admin.register(Summary)
class SummaryAdmin(ReadOnlyAdmin):
    list_display = ("created", "conversation", "covered_count", "model_key", "prompt_tokens", "completion_tokens")
    search_fields = ("conversation__id", "text")
    readonly_fields = ("conversation", "last_message", "previous")
