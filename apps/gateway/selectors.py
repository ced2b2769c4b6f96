"""Reads for API keys."""

from apps.gateway.models import PERMISSION, ApiKey


def keys_of(*, user):
    return list(ApiKey.objects.filter(user=user))


def may_use_keys(*, user):
    """Whether ``user`` may create and use API keys (the group permission; superusers may)."""
    return user.is_active and user.has_perm(PERMISSION)
