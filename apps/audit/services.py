"""Writing audit entries. Every entry is one INSERT; nothing here reads message content."""

import logging

from django.core.exceptions import ObjectDoesNotExist

from apps.audit.context import current
from apps.audit.models import AuditEntry

logger = logging.getLogger("lapis.audit")
Action = AuditEntry.Action


def record(*, action, summary, target=None, changes=None, diff="", actor=None, actor_name=None, address=None):
    """Store one audit entry and return it.

    ``target``: the model instance acted on (its type, id and ``str()`` are kept; pass
    ``target_repr`` through ``summary`` instead for objects whose ``str()`` could hold content).
    ``actor``/``actor_name``/``address`` default to the current request's or command's
    (apps.audit.context).
    """
    who = current()
    user = actor if actor is not None else who.user
    entry = AuditEntry(
        action=action,
        summary=summary[:500],
        actor=user if getattr(user, "is_authenticated", False) and user.pk else None,
        actor_name=(actor_name or (user.get_username() if getattr(user, "is_authenticated", False) else who.name))[:150],
        address=(who.address if address is None else address)[:64],
        changes=changes or {},
        diff=diff,
    )
    if target is not None:
        entry.target_type = target._meta.label_lower
        entry.target_id = str(target.pk)
        entry.target_repr = described(target)[:200]
    entry.save()
    logger.info("audit %s by %s from %s: %s", action, entry.actor_name, entry.address or "-", entry.summary)
    return entry


def record_export(*, what, rows, filters=None):
    """An admin's export (e.g. a CSV download): what, how many rows, with which filters."""
    return record(
        action=Action.ADMIN_EXPORT, summary=f"exported {rows} row(s) of {what}",
        changes={"filters": filters or {}, "rows": rows},
    )


def described(instance):
    """``str(instance)``, or its type and id when that needs a row a cascade already deleted
    (a user's budget goes with the user)."""
    try:
        return str(instance)
    except ObjectDoesNotExist:
        return f"{instance._meta.verbose_name} #{instance.pk}"
