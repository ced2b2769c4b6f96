"""Temporary chats: kept while a socket holds them, deleted (messages and images with them) when
the last socket holding them closes; their usage records stay (``conversation`` NULL).

A socket holds a temporary conversation once it sends into it, resumes one of its answers or
sends ``watch`` (a tab showing it). Holds are rows (TemporaryHold): every process and tab counts,
and ``touched`` is refreshed every TTL/3 by the holding process, so the holds of a process that
crashed go stale after ``RATE_LIMIT_SLOT_TTL`` seconds and ``sweep_orphans`` deletes what only
they held (run by this refresher, at start-up and by ``manage.py apply_retention``).

An answer still being written when its chat goes is stopped (its usage is recorded as the
final write finds the conversation gone, apps.chat.checkpoints).
"""

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.chat.models import Conversation, Message, TemporaryHold
from apps.chat.workers import WORKER_ID

logger = logging.getLogger("lapis.chat")
_holding = set()  # (conversation id, channel name) this process holds: the refresher's work
_refreshers = {}  # event loop → task


def ttl():
    return max(int(settings.RATE_LIMIT_SLOT_TTL), 3)


def _fresh_holds(conversation_id, now=None):
    since = (now or timezone.now()) - timedelta(seconds=ttl())
    return TemporaryHold.objects.filter(conversation_id=conversation_id, touched__gte=since)


def hold(*, conversation_id, channel_name):
    """Record that ``channel_name`` holds the temporary conversation; False if it is gone."""
    try:
        TemporaryHold.objects.update_or_create(
            conversation_id=conversation_id, channel_name=channel_name,
            defaults={"worker": WORKER_ID, "touched": timezone.now()},
        )
    except IntegrityError:  # deleted meanwhile (its last other socket closed)
        return False
    return True


async def ahold(*, conversation, channel_name):
    """``hold`` for a socket, if ``conversation`` is temporary; keeps the hold fresh."""
    if not conversation.temporary:
        return True
    if not await database_sync_to_async(hold)(conversation_id=conversation.pk, channel_name=channel_name):
        return False
    _holding.add((conversation.pk, channel_name))
    _ensure_refresher()
    return True


def release(*, channel_name):
    """Drop ``channel_name``'s holds; end the chats no fresh hold keeps. Returns the answers
    that were still streaming in them, as (message id, worker), to be stopped."""
    held = list(TemporaryHold.objects.filter(channel_name=channel_name).values_list("conversation_id", flat=True))
    if not held:
        return []
    TemporaryHold.objects.filter(channel_name=channel_name).delete()
    streaming = []
    for conversation_id in held:
        streaming += end_if_unheld(conversation_id) or []
    return streaming


async def arelease(*, channel_name):
    for key in [key for key in _holding if key[1] == channel_name]:
        _holding.discard(key)
    streaming = await database_sync_to_async(release)(channel_name=channel_name)
    await _stop(streaming)


def end_if_unheld(conversation_id, *, ignore_holds=False):
    """Delete the temporary conversation unless a fresh hold keeps it; return its streaming
    answers as [(id, worker)], or None when it was kept (or already gone). The row lock orders
    this against a new hold's insert."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id, temporary=True).first()
        if conversation is None or (not ignore_holds and _fresh_holds(conversation_id).exists()):
            return None
        streaming = list(
            Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
            .values_list("id", "worker")
        )
        conversation.delete()
    logger.info("temporary chat %s ended: deleted", conversation_id)
    return streaming


def sweep_orphans(*, all_dead=False):
    """Delete temporary chats that no fresh hold keeps and that are older than the TTL (a new
    chat's first hold comes just after it); ``all_dead``: every hold is of a dead process (one
    process, at its start). Returns how many went."""
    now = timezone.now()
    candidates = Conversation.objects.filter(temporary=True)
    if not all_dead:
        since = now - timedelta(seconds=ttl())
        candidates = candidates.filter(created__lt=since).exclude(
            pk__in=TemporaryHold.objects.filter(touched__gte=since).values("conversation_id")
        )
    count = 0
    for conversation_id in list(candidates.values_list("pk", flat=True)):
        count += end_if_unheld(conversation_id, ignore_holds=all_dead) is not None
    if count:
        logger.warning("Swept %d temporary chat(s) whose sockets were gone", count)
    return count


def sweep_at_startup():
    """With one process (no REDIS_URL) every hold at start is a dead process's."""
    from django.db import DatabaseError

    try:
        sweep_orphans(all_dead=not settings.REDIS_URL)
    except DatabaseError as exc:  # as workers.sweep_interrupted: a database down must not stop the start
        logger.warning("Temporary-chat sweep skipped: the database is not reachable (%s)", type(exc).__name__)


async def _stop(streaming):
    from apps.chat.generation import running_generation, send_control

    for message_id, worker in streaming:
        local = running_generation(message_id)
        if local is not None:
            local.request_stop()
        else:
            await send_control(message_id=message_id, worker=worker, event={"type": "generation.stop"})


def _ensure_refresher():
    loop = asyncio.get_running_loop()
    task = _refreshers.get(loop)
    if task is None or task.done():
        for old in [key for key in _refreshers if key.is_closed()]:
            del _refreshers[old]
        _refreshers[loop] = loop.create_task(_refresh(), name="temporary-chat-holds")


def _touch_and_sweep():
    TemporaryHold.objects.filter(worker=WORKER_ID).update(touched=timezone.now())
    sweep_orphans()


async def _refresh():
    while _holding:
        await asyncio.sleep(ttl() / 3)
        try:
            await database_sync_to_async(_touch_and_sweep)()
        except Exception:  # the database away for a moment: the next round tries again
            logger.exception("Refreshing temporary-chat holds failed")
