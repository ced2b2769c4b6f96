"""The chat's own database threads, beside Channels' single database thread.

Channels' ``database_sync_to_async`` (and the async ORM) run every call on ONE thread, shared by
every socket's connect, sign-in and ORM call of the process; with many answers starting at once
each call waits for all those queued before it. The chat's hot-path calls (the per-frame session
check, storing an exchange with the reads its answer needs) run on these threads instead:
CHAT_DB_THREADS of them (0, the default: 1 on SQLite, which takes one writer at a time, so a
second one would only sleep in SQLite's busy handler; 4 on PostgreSQL, where sends of different
users lock different rows).

Django's async safety rules hold: the ORM runs in plain threads without an event loop; every call
is self-contained (its own transaction, nothing kept on the thread between calls); each thread
has its own connection, persistent (CONN_MAX_AGE) and closed when too old or broken before and
after every call, as Channels' ``database_sync_to_async`` does.
"""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

POSTGRES_THREADS = 4
_lock = threading.Lock()
_executor = None


def thread_count():
    """CHAT_DB_THREADS, or the default for the database (see the module)."""
    configured = int(getattr(settings, "CHAT_DB_THREADS", 0) or 0)
    if configured > 0:
        return configured
    return 1 if connection.vendor == "sqlite" else POSTGRES_THREADS


def _pool():
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=thread_count(), thread_name_prefix="lapis-chat-db")
        return _executor


def _closing_old_connections(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run


def on_chat_db(fn):
    """``fn`` (sync, self-contained) as an awaitable callable that runs on the chat's database
    threads; old connections are closed before and after, like ``database_sync_to_async``."""
    return sync_to_async(_closing_old_connections(fn), thread_sensitive=False, executor=_pool())
