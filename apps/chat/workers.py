"""This server process's identity, and the start-up sweep of answers left by dead processes."""

import logging
import os
import socket
import uuid

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger("lapis.chat")
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:80]


def sweep_interrupted():
    """Mark answers left ``streaming`` by a dead process as ``interrupted``; return how many.

    With the in-memory channel layer only one process serves, so every streaming answer at
    start-up was left by a dead one. With Redis, other live processes may be streaming, so only
    answers whose process stopped writing (no checkpoint or heartbeat for STALE_AFTER) count.
    """
    from apps.chat.exchange import interrupt_stale, mark_interrupted
    from apps.chat.models import Message

    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    try:
        count = interrupt_stale(streaming) if settings.REDIS_URL else mark_interrupted(streaming)
    except DatabaseError as exc:
        # A database that is down at start must not stop the server: /healthz reports it, and
        # a send to a conversation with a stale answer interrupts it then (exchange._refuse_if_busy).
        logger.warning("Start-up sweep skipped: the database is not reachable (%s)", type(exc).__name__)
        return 0
    if count:
        logger.warning("Marked %d unfinished answer(s) as interrupted", count)
    return count
