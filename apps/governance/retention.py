"""Retention: delete conversations (with their messages and images) older than their owner's
policy (apps.governance.models.RetentionPolicy), counted by their last activity (``updated``).

- ``days_for(user=...)``: the user's policy in days, or None (kept for good).
- ``apply_retention(dry_run=...)``: what ``manage.py apply_retention`` runs. Temporary chats are
  left to apps.chat.temporary (they go when their last socket does). Usage records stay (their
  conversation becomes NULL): spending is history, not conversation content.

Images go with their rows: Attachment's post_delete signal removes the files once each batch's
transaction commits (apps.media.signals), so a failed batch keeps rows and files alike.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger("lapis.governance")
BATCH = 200  # conversations per transaction: bounded locks and memory however much is due


def _policies():
    """(default days or None, {user id: days}) for every user a group policy covers."""
    from apps.governance.models import RetentionPolicy

    default, by_group = None, {}
    for group_id, days in RetentionPolicy.objects.values_list("group_id", "days"):
        if group_id is None:
            default = days
        else:
            by_group[group_id] = days
    members = get_user_model().groups.through.objects.filter(group_id__in=by_group)
    by_user = {}
    for user_id, group_id in members.values_list("user_id", "group_id"):
        by_user[user_id] = max(by_user.get(user_id, 0), by_group[group_id])  # the longest wins
    return default, by_user


def days_for(*, user):
    """Days ``user``'s conversations are kept after their last activity; None: for good."""
    from apps.governance.models import RetentionPolicy

    rows = list(RetentionPolicy.objects.filter(Q(group__isnull=True) | Q(group__user=user.pk)).values_list("group_id", "days"))
    grouped = [days for group_id, days in rows if group_id is not None]
    if grouped:
        return max(grouped)
    return next((days for group_id, days in rows if group_id is None), None)


@dataclass
class RetentionResult:
    conversations: int = 0
    messages: int = 0
    images: int = 0
    users: set = field(default_factory=set)
    dry_run: bool = False

    def describe(self):
        verb = "would delete" if self.dry_run else "deleted"
        return (f"retention {verb} {self.conversations} conversation(s), {self.messages} message(s) "
                f"and {self.images} image(s) of {len(self.users)} user(s)")


def due(*, now=None):
    """[(cutoff, Conversation queryset)]: per policy, the conversations past it."""
    from apps.chat.models import Conversation

    now = now or timezone.now()
    default, by_user = _policies()
    base = Conversation.objects.filter(temporary=False)
    buckets = {}
    for user_id, days in by_user.items():
        buckets.setdefault(days, []).append(user_id)
    found = [
        (now - timedelta(days=days), base.filter(owner_id__in=users, updated__lt=now - timedelta(days=days)))
        for days, users in sorted(buckets.items())
    ]
    if default is not None:
        cutoff = now - timedelta(days=default)
        found.append((cutoff, base.filter(updated__lt=cutoff).exclude(owner_id__in=list(by_user))))
    return found


def apply_retention(*, dry_run=False, now=None):
    """Delete (or with ``dry_run`` only count) what is past its policy; return the counts."""
    from apps.chat.models import Message
    from apps.media.models import Attachment

    result = RetentionResult(dry_run=dry_run)
    for _cutoff, conversations in due(now=now):
        rows = list(conversations.values_list("pk", "owner_id"))
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            ids = [pk for pk, _owner in batch]
            with transaction.atomic():
                result.messages += Message.objects.filter(conversation_id__in=ids).count()
                result.images += Attachment.objects.filter(
                    Q(conversation_id__in=ids) | Q(message__conversation_id__in=ids)
                ).distinct().count()
                result.conversations += len(ids)
                result.users.update(owner for _pk, owner in batch)
                if not dry_run:
                    # Re-checked in the delete: a conversation used since it was listed stays.
                    conversations.filter(pk__in=ids).delete()
    logger.info(result.describe())
    if not dry_run and result.conversations:
        from apps.audit.services import Action, record

        record(action=Action.RETENTION_APPLY, summary=result.describe(),
               changes={"conversations": result.conversations, "messages": result.messages, "images": result.images})
    return result
