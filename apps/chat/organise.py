"""Folders, pins and bulk archive/delete of conversations: services (write) and selectors (read),
every object looked up with its owner.

Pinning and moving to a folder do not count as activity: they leave ``updated`` (the sidebar's
date order) alone.
"""

import time
import uuid

from asgiref.sync import async_to_sync
from django.db import IntegrityError, OperationalError, transaction

from apps.chat.models import Conversation, Folder, Message

MAX_FOLDERS = 200
BULK_MAX = 500


class OrganiseError(ValueError):
    """Input Lapis cannot accept; the message says what and where."""


class NotFound(LookupError):
    """An id that is not one of the user's (or does not exist: the two look the same)."""


def folders_of(*, user):
    """The user's folders, by name."""
    return list(Folder.objects.filter(owner=user).order_by("name"))


def folder_for(*, user, folder_id):
    """The user's folder with that id, or None (another user's is None too)."""
    folder_id = _uuid_or_none(folder_id)
    if folder_id is None:
        return None
    return Folder.objects.filter(owner=user, id=folder_id).first()


def _clean_name(name):
    name = " ".join((name if isinstance(name, str) else "").split())
    if not name:
        raise OrganiseError("name: a folder needs a name.")
    if len(name) > Folder.NAME_MAX_CHARS:
        raise OrganiseError(f"name: at most {Folder.NAME_MAX_CHARS} characters.")
    return name


def create_folder(*, user, name):
    """A new folder; raises OrganiseError for an empty, too long or already used name, or past
    MAX_FOLDERS."""
    name = _clean_name(name)
    if Folder.objects.filter(owner=user).count() >= MAX_FOLDERS:
        raise OrganiseError(f"You have {MAX_FOLDERS} folders already, the most there can be.")
    try:
        with transaction.atomic():
            return Folder.objects.create(owner=user, name=name)
    except IntegrityError:
        raise OrganiseError(f"name: you have a folder called {name!r} already.") from None


def rename_folder(*, folder, name):
    folder.name = _clean_name(name)
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError:
        raise OrganiseError(f"name: you have a folder called {folder.name!r} already.") from None
    return folder


def delete_folder(*, folder):
    """Delete the folder; its conversations stay, in no folder."""
    folder.delete()


def move_to_folder(*, user, conversation, folder_id):
    """Put the conversation in the user's folder ``folder_id`` (None: out of any folder).
    Raises NotFound for a folder that is not the user's."""
    folder = None
    if folder_id is not None:
        folder = folder_for(user=user, folder_id=folder_id)
        if folder is None:
            raise NotFound("No such folder.")
    Conversation.objects.filter(pk=conversation.pk, owner=user).update(folder=folder)
    conversation.folder = folder
    return conversation


def set_pinned(*, conversation, pinned):
    Conversation.objects.filter(pk=conversation.pk).update(pinned=pinned)
    conversation.pinned = pinned
    return conversation


def owned_conversations(*, user, ids):
    """The user's conversations with these ids, locked for the transaction the caller holds.

    All or nothing: raises OrganiseError for a bad list and NotFound if any id is not one of
    the user's, so a bulk action never half-applies."""
    if not isinstance(ids, list) or not ids:
        raise OrganiseError("ids: a list of one or more conversation ids.")
    if len(ids) > BULK_MAX:
        raise OrganiseError(f"ids: at most {BULK_MAX} conversations at once.")
    wanted = {_uuid_or_none(value) for value in ids}
    if None in wanted:
        raise OrganiseError("ids: every id must be a conversation id.")
    found = list(Conversation.objects.select_for_update().filter(owner=user, id__in=wanted))
    if len(found) != len(wanted):
        raise NotFound("No such conversation (one or more of the ids).")
    return found


@transaction.atomic
def bulk_archive(*, user, ids, archived=True):
    """Archive (or unarchive) the user's conversations ``ids``, all or none; returns how many."""
    conversations = owned_conversations(user=user, ids=ids)
    for conversation in conversations:
        conversation.archived = archived
        conversation.save(update_fields=["archived", "updated"])
    return len(conversations)


LOCK_RETRIES = 3


def bulk_delete(*, user, ids):
    """Delete the user's conversations ``ids``, all or none, stopping answers still being
    written (wherever they run); returns how many."""
    # PostgreSQL may pick the delete as a deadlock victim against an answer's checkpoint write
    # (see views._write_view): it has written nothing, so it runs again.
    for attempt in range(LOCK_RETRIES):
        try:
            return _bulk_delete(user=user, ids=ids)
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in ("40P01", "40001") or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _bulk_delete(*, user, ids):
    from apps.chat.generation import stop_answer

    with transaction.atomic():
        conversations = owned_conversations(user=user, ids=ids)
        streaming = list(
            Message.objects.filter(
                conversation__in=conversations, status=Message.Status.STREAMING
            ).values_list("id", "worker")
        )
        for message_id, worker in streaming:
            async_to_sync(stop_answer)(message_id, worker=worker)
        Conversation.objects.filter(id__in=[c.id for c in conversations]).delete()
    return len(conversations)


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None
