"""IMPORT_MAX_BYTES must leave room for a real export and stay below what the server can hold."""

from django.conf import settings
from django.core import checks

IMPORT_MAX_CEILING = 1024 * 1024 * 1024


@checks.register()
def check_import_limit(app_configs=None, **kwargs):
    value = settings.IMPORT_MAX_BYTES
    if not 1024 <= value <= IMPORT_MAX_CEILING:
        return [checks.Error(
            f"IMPORT_MAX_BYTES is {value}; it must be between 1024 and {IMPORT_MAX_CEILING} bytes.",
            id="lapis.E401",
        )]
    return []
