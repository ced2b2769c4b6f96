"""Sessions end everywhere: a signed-out, deactivated or demoted user's sockets stop at once.

Two ways, so that a lost channel-layer message cannot keep a socket alive:
- push: logging out, deactivation, deletion, losing a group or the staff/superuser flag send a
  ``session.revoked`` event through the channel layer (Redis: every process) to the groups that
  the user's sockets joined at connect (``join``); the consumer closes the socket;
- pull: every frame a socket sends is first checked with ``still_signed_in`` (the session still
  exists, the user is active, the password has not changed since), so a socket whose event was
  lost, or that lives on a process the event never reached, cannot act.
Close codes: 4401 (signed out: the page goes to the login) and 4403 (rights changed: the page
reconnects and gets the new rights).
"""

import hashlib
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import transaction
from django.utils.crypto import constant_time_compare

from project.dbthreads import on_chat_db

logger = logging.getLogger("lapis.accounts")
SIGNED_OUT = 4401
RIGHTS_CHANGED = 4403


def account_group(user_id):
    return f"account-{user_id}"


def session_group(session_key):
    # A digest: the session key itself never becomes a channel-layer (Redis) name.
    return "session-" + hashlib.sha256(session_key.encode()).hexdigest()[:40]


async def join(consumer):
    """Add the socket to its user's and its session's groups; returns them (for ``leave``)."""
    groups = [account_group(consumer.scope["user"].pk)]
    key = getattr(consumer.scope.get("session"), "session_key", None)
    if key:
        groups.append(session_group(key))
    for group in groups:
        await consumer.channel_layer.group_add(group, consumer.channel_name)
    return groups


async def leave(consumer, groups):
    for group in groups:
        await consumer.channel_layer.group_discard(group, consumer.channel_name)


def revoke(*, user_id=None, session_key=None, code=SIGNED_OUT, reason):
    """After the current transaction commits, close the sockets of the user or the session."""
    groups = []
    if user_id is not None:
        groups.append(account_group(user_id))
    if session_key:
        groups.append(session_group(session_key))

    def send():
        layer = get_channel_layer()
        if layer is None:
            return
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, {"type": "session.revoked", "code": code, "reason": reason})
            except Exception:  # the pull check still stops the socket at its next frame
                logger.warning("could not tell %s's sockets to close (%s)", group, reason, exc_info=True)

    transaction.on_commit(send)


def _check(user_id, session_key, session_hash):
    from importlib import import_module

    from django.conf import settings

    if not session_key or not import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key):
        return False
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False
    return bool(session_hash) and constant_time_compare(session_hash, user.get_session_auth_hash())


async def still_signed_in(scope):
    """True while the socket's session is live and its user active with the same password."""
    user, session = scope.get("user"), scope.get("session")
    if user is None or not user.is_authenticated or session is None:
        return False
    # One thread call, not three, on the chat's database threads (project.dbthreads), not
    # behind every other socket's call on Channels' one: every frame of every socket runs this.
    # It closes old connections first, as Channels does per handler (apps.chat.consumers skips
    # that hop for client frames because this one does it).
    return await on_chat_db(_still_signed_in)(user, session)


def _still_signed_in(user, session):
    try:
        session_hash = session.get(HASH_SESSION_KEY)
        stored_id = session.get(SESSION_KEY)
    except Exception:
        return False
    if str(stored_id) != str(user.pk):
        return False
    return _check(user.pk, session.session_key, session_hash)


# ---------------------------------------------------------------- signal handlers (apps.py)
def on_logged_out(sender, request, user, **kwargs):
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None:
        revoke(session_key=key, reason="signed out")


def on_user_pre_save(sender, instance, update_fields=None, **kwargs):
    """Remember the flags that, when they go, end the user's sockets."""
    if instance.pk is None or (update_fields and not {"is_active", "is_staff", "is_superuser"} & set(update_fields)):
        instance._lapis_flags_before = None
        return
    instance._lapis_flags_before = (
        get_user_model().objects.filter(pk=instance.pk).values_list("is_active", "is_staff", "is_superuser").first()
    )


def on_user_saved(sender, instance, created=False, **kwargs):
    before = getattr(instance, "_lapis_flags_before", None)
    if created or not before:
        return
    was_active, was_staff, was_superuser = before
    if was_active and not instance.is_active:
        revoke(user_id=instance.pk, reason="deactivated")
    elif (was_staff and not instance.is_staff) or (was_superuser and not instance.is_superuser):
        revoke(user_id=instance.pk, code=RIGHTS_CHANGED, reason="admin rights removed")


def on_user_deleted(sender, instance, **kwargs):
    revoke(user_id=instance.pk, reason="deleted")


def on_groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """A group lost (removed, cleared, or the group deleted) may take models away."""
    if action not in ("post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups.remove(...) / clear()
        users = [instance.pk]
    elif action == "post_remove":  # group.user_set.remove(...)
        users = list(pk_set or ())
    else:
        users = list(instance.user_set.values_list("pk", flat=True))
    for user_id in users:
        revoke(user_id=user_id, code=RIGHTS_CHANGED, reason="group removed")
