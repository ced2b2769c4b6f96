"""Writes for API keys. Keyword-only; the raw key leaves only through ``create_key``."""

from django.db import transaction
from django.utils import timezone

from apps.gateway.models import VISIBLE, ApiKey, digest, new_secret

MAX_KEYS_PER_USER = 50  # active ones: a runaway script must not fill the table


class KeyRefused(Exception):
    """``str()`` says why, for the person."""


def create_key(*, user, name, expires=None):
    """(ApiKey, raw key). The raw key is shown once and never stored."""
    name = (name or "").strip()
    if not name:
        raise KeyRefused("Give the key a name, so you can tell it apart later.")
    if len(name) > 100:
        raise KeyRefused(f"The name is {len(name)} characters long; at most 100.")
    if expires is not None and expires <= timezone.now():
        raise KeyRefused("The expiry date is in the past; pick a later date or none.")
    with transaction.atomic():
        active = ApiKey.objects.filter(user=user, revoked__isnull=True).exclude(
            expires__lte=timezone.now()
        ).count()
        if active >= MAX_KEYS_PER_USER:
            raise KeyRefused(f"You have {active} active keys, the most allowed. Revoke one first.")
        raw = new_secret()
        key = ApiKey.objects.create(
            user=user, name=name, prefix=raw[:VISIBLE], digest=digest(raw), expires=expires
        )
    return key, raw


def revoke_key(*, key, by):
    """Revoke ``key`` (idempotent: a revoked key keeps its first revocation)."""
    if key.revoked is None:
        key.revoked = timezone.now()
        key.revoked_by = by
        key.save(update_fields=["revoked", "revoked_by"])
    return key


def revoke_keys(*, queryset, by):
    """Revoke every still-active key of ``queryset``; the number revoked."""
    return queryset.filter(revoked__isnull=True).update(revoked=timezone.now(), revoked_by=by)
