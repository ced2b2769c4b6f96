"""Writes for model-group configurations: store a version, activate it, load a CONFIG_PATH file.

A text with any error is never stored as usable nor activated: a bad config never replaces a
good one and never half-applies.
"""

import hashlib
import logging

from django.db import transaction
from django.utils import timezone

from apps.azure import audit, registry
from apps.azure.config import ConfigFileError, LoadResult, Problem, parse_config, read_config_file
from apps.azure.models import ConfigVersion
from apps.azure.selectors import active_version

logger = logging.getLogger("lapis.azure")


class ConfigInvalid(Exception):
    """Raised by ``activate_version`` when the stored text no longer validates here."""

    def __init__(self, result):
        super().__init__("\n".join(str(problem) for problem in result.errors))
        self.result = result


def checksum(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_version(*, text, source, user=None):
    """Validate ``text``; if it is valid, store it as a new inactive version.

    Returns ``(version or None, LoadResult)``.
    """
    result = parse_config(text)
    if result.errors:
        return None, result
    with transaction.atomic():
        version = ConfigVersion.objects.create(
            text=text, checksum=checksum(text), source=source, created_by=_user(user)
        )
        audit.loaded(version=version, active=active_version(), user=_user(user))
    return version, result


def activate_version(*, version, user=None):
    """Make ``version`` the one active version (re-validated first; raises ConfigInvalid)."""
    result = parse_config(version.text)
    if result.errors:
        raise ConfigInvalid(result)
    with transaction.atomic():
        previous = active_version()
        # Back to a version that was active before, or to an older one: a rollback.
        rollback = version.activated is not None or (previous is not None and version.pk < previous.pk)
        ConfigVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        version.is_active = True
        version.activated = timezone.now()
        version.activated_by = _user(user)
        version.save(update_fields=["is_active", "activated", "activated_by"])
        if previous is None or previous.pk != version.pk:
            audit.activated(version=version, previous=previous, user=_user(user), rollback=rollback)
    transaction.on_commit(registry.invalidate)
    registry.invalidate()
    logger.info(
        "config version %s activated (source %s, by %s)",
        version.pk,
        version.source,
        getattr(version.activated_by, "username", "system"),
    )
    return result


def load_and_activate(*, text, source, user=None):
    """Validate, store and activate ``text``; returns the LoadResult and raises nothing."""
    version, result = load_version(text=text, source=source, user=user)
    if version is None:
        return result
    try:
        activate_version(version=version, user=user)
    except ConfigInvalid as exc:  # the environment changed between the two checks
        return exc.result
    result.version = version
    return result


def load_config_file(path):
    """Read CONFIG_PATH at start: a bad file raises ConfigInvalid with every error; a good file
    that differs from the active version becomes the active version (source "file")."""
    try:
        text = read_config_file(path)
    except ConfigFileError as exc:
        raise ConfigInvalid(LoadResult(None, [Problem("", 1, 1, f"CONFIG_PATH {exc}")], [])) from None
    result = parse_config(text)
    for warning in result.warnings:
        logger.warning("CONFIG_PATH %s: %s", path, warning)
    if result.errors:
        raise ConfigInvalid(result)
    active = active_version()
    if active is not None and active.checksum == checksum(text):
        return None
    with transaction.atomic():
        version = ConfigVersion.objects.create(text=text, checksum=checksum(text), source="file")
        audit.loaded(version=version, active=active, user=None)
    activate_version(version=version)
    return version


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None
