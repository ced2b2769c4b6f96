"""Chat settings that cannot work, as system checks (shown by every manage.py command)."""

from django.conf import settings
from django.core import checks


def check_chat_settings(app_configs=None, **kwargs):
    threads = settings.CHAT_DB_THREADS
    if threads < 0 or threads > 64:
        return [checks.Error(
            f"CHAT_DB_THREADS={threads} is out of range.",
            hint="Use 1 to 64 threads, or 0 for the default (1 on SQLite, 4 on PostgreSQL).",
            id="lapis.E301",
        )]
    return []
