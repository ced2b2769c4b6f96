"""Rate-limit settings that cannot work, as system checks (shown by every manage.py command)."""

from django.conf import settings
from django.core import checks

LIMIT_SETTINGS = ("CHAT_ANSWERS_PER_MINUTE", "CHAT_ANSWERS_AT_ONCE", "CHAT_SOCKETS_PER_USER")


def check_limits(app_configs=None, **kwargs):
    problems = [
        checks.Error(
            f"{name}={getattr(settings, name)} is negative.",
            hint="Use a whole number of 1 or more, or 0 for no limit (README: Configuration).",
            id="lapis.E601",
        )
        for name in LIMIT_SETTINGS
        if getattr(settings, name) < 0
    ]
    if settings.RATE_LIMIT_SLOT_TTL < 3:
        problems.append(checks.Error(
            f"RATE_LIMIT_SLOT_TTL={settings.RATE_LIMIT_SLOT_TTL} is too short: live answers and "
            "sockets would lose their slots between refreshes.",
            hint="Use 3 seconds or more (default 60).", id="lapis.E602",
        ))
    return problems
