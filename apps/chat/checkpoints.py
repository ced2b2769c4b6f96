"""The process's database writer for answers: batched checkpoints, final writes, repairs.

One writer per event loop (``writer()``). Running generations register with it; every
CHECKPOINT_INTERVAL it saves the relayed text of every answer that changed, and touches
``updated`` (the heartbeat other processes read as "alive") of the ones that did not change for
HEARTBEAT_INTERVAL, all in ONE transaction. So 1,000 answers cost one transaction per second, not
1,000, and at most one checkpoint per answer per second.

All of its database work runs on its own single thread (``_EXECUTOR``) with its own persistent
connection, not on Channels' one database thread that every socket's ORM call queues on; one
thread keeps the writes of one answer in order (a checkpoint never lands after the final write).
The event loop never waits for a checkpoint: a relay keeps sending frames while a batch waits on
a locked or missing database.

Faults: a failed batch is retried at the next tick (the newest text wins). A final write is
retried with backoff for CHAT_SAVE_PATIENCE seconds; if the database is still away, ``finish``
returns False (the caller tells the user the answer was not saved) and the writer keeps
retrying it in the background until the database is back: the row is repaired, never left
``streaming``. ``health()`` says what is pending, for /healthz.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from apps.observability import metrics

logger = logging.getLogger("lapis.chat")

CHECKPOINT_INTERVAL = 1.0
HEARTBEAT_INTERVAL = 5.0
DEFAULT_SAVE_PATIENCE = 15.0
RETRY_FIRST = 0.25
RETRY_MAX = 4.0

# One thread for every loop's writer: its connection is reused (CONN_MAX_AGE) and its writes
# happen in the order they were submitted.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lapis-db-writer")
_writers = {}  # event loop → Writer


def save_patience():
    return float(getattr(settings, "CHAT_SAVE_PATIENCE", DEFAULT_SAVE_PATIENCE))


def writer():
    """The writer of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    current = _writers.get(loop)
    if current is None:
        for old in [key for key in _writers if key.is_closed()]:
            del _writers[old]
        current = _writers[loop] = Writer()
    return current


def health():
    """"ok", or what this process could not save (for /healthz)."""
    problems = [w.problem() for w in list(_writers.values())]
    problems = [p for p in problems if p]
    return "; ".join(problems) if problems else "ok"


def _on_writer_thread(fn):
    return sync_to_async(fn, thread_sensitive=False, executor=_EXECUTOR)


def _drop_connection():
    """After a database error the connection may be broken: the next call opens a new one."""
    try:
        connection.close()
    except Exception:  # closing a dead connection can fail too; it is gone either way
        pass


def _run_write(fn):
    """``fn()`` in a transaction on the writer thread's connection; reconnect after a fault."""
    close_old_connections()  # CONN_MAX_AGE and health checks, as Django does per request
    try:
        with transaction.atomic():
            return fn()
    except DatabaseError:
        _drop_connection()
        raise
    finally:
        close_old_connections()


def _write_batch(updates, touches):
    """One transaction: the text of ``updates`` [(id, seq, text, reasoning)], a heartbeat for
    ``touches``."""
    from apps.chat.models import Message

    def write():
        now = timezone.now()
        streaming = Message.objects.filter(status=Message.Status.STREAMING)
        for message_id, seq, text, reasoning in updates:
            streaming.filter(id=message_id).update(
                content=text, reasoning=reasoning, seq=seq, updated=now
            )
        if touches:
            streaming.filter(id__in=touches).update(updated=now)

    with metrics.checkpoint_write("batch"):
        _run_write(write)


def _write_final(message_id, fields, usage):
    """The final state of one answer and its usage record, in one transaction.

    ``usage``: UsageRecord fields or None. A conversation deleted meanwhile keeps the usage
    (counted for the user, ``conversation`` NULL); its row is locked first so a delete cannot
    remove it between the check and the insert.
    """
    from apps.chat.models import Conversation, Message, UsageRecord

    def write():
        Message.objects.filter(id=message_id).update(**fields)
        if usage is not None:
            record = dict(usage)
            kept = Conversation.objects.select_for_update().filter(id=record["conversation_id"])
            if not list(kept.values_list("pk")):
                record["conversation_id"] = None
            UsageRecord.objects.create(**record)

    with metrics.checkpoint_write("final"):
        _run_write(write)


class Writer:
    """Checkpoints for the registered generations; final writes; repairs. See the module."""

    def __init__(self):
        self.live = {}  # message id → Generation
        self.repairs = {}  # message id → (fields, usage): final writes the database refused
        self.failing_since = None  # monotonic time of the first failed batch in a row
        self.last_error = ""
        self.task = None

    def register(self, generation):
        """Checkpoint ``generation`` (its ``seq``, ``relayed_text``, ``relayed_reasoning``, ``checkpointed_seq``,
        ``last_write``) until ``unregister``."""
        self.live[generation.message_id] = generation
        self._ensure_running()

    def unregister(self, generation):
        self.live.pop(generation.message_id, None)

    def problem(self):
        parts = []
        if self.repairs:
            parts.append(f"{len(self.repairs)} finished answer(s) not saved yet")
        if self.failing_since is not None:
            seconds = time.monotonic() - self.failing_since
            parts.append(f"checkpoints failing for {seconds:.0f} s")
        if parts and self.last_error:
            parts.append(f"last error {self.last_error}")
        return ", ".join(parts)

    def _ensure_running(self):
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop(), name="checkpoint-writer")

    async def _loop(self):
        """Tick while there is something to write; ends when nothing is registered or pending,
        so no task outlives the answers (a test's event loop closes cleanly)."""
        delay = CHECKPOINT_INTERVAL
        while self.live or self.repairs:
            await asyncio.sleep(delay)
            try:
                ok = await self._checkpoint_all()
                if self.repairs:
                    ok = await self._repair() and ok
            except Exception:  # a bug here must not end checkpointing for the whole process
                logger.exception("The checkpoint writer failed; it goes on")
                ok = False
            delay = CHECKPOINT_INTERVAL if ok else min(delay * 2, RETRY_MAX)

    async def _checkpoint_all(self):
        now = time.monotonic()
        updates, touches, written = [], [], []
        for generation in list(self.live.values()):
            if generation.seq != generation.checkpointed_seq:
                updates.append((
                    generation.message_id, generation.seq, generation.relayed_text,
                    generation.relayed_reasoning,
                ))
                written.append((generation, generation.seq))
            elif now - generation.last_write >= HEARTBEAT_INTERVAL:
                touches.append(generation.message_id)
                written.append((generation, generation.seq))
        if not written:
            return True
        try:
            await _on_writer_thread(_write_batch)(updates, touches)
        except DatabaseError as exc:
            self._failed(exc, "checkpoint")
            return False
        self.failing_since, self.last_error = None, ""
        for generation, seq in written:
            generation.checkpointed_seq, generation.last_write = seq, now
        return True

    def _failed(self, exc, what):
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            logger.warning("Answer %s write failed, retrying: %s", what, type(exc).__name__)
        self.last_error = type(exc).__name__

    async def finish(self, message_id, *, fields, usage=None):
        """Write the final state; True once saved. Retries with backoff for the save patience;
        False if the database stayed away (the write is then kept and retried until it lands)."""
        deadline = time.monotonic() + save_patience()
        delay = RETRY_FIRST
        while True:
            try:
                await _on_writer_thread(_write_final)(message_id, fields, usage)
                return True
            except DatabaseError as exc:
                self._failed(exc, "final")
                if time.monotonic() + delay > deadline:
                    break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        logger.error("Answer %s could not be saved; retrying in the background", message_id)
        self.repairs[message_id] = (fields, usage)
        self._ensure_running()
        return False

    async def _repair(self):
        for message_id, (fields, usage) in list(self.repairs.items()):
            try:
                await _on_writer_thread(_write_final)(message_id, fields, usage)
            except DatabaseError as exc:
                self._failed(exc, "repair")
                return False
            del self.repairs[message_id]
            logger.warning("Answer %s saved after the database came back", message_id)
        self.failing_since, self.last_error = None, ""
        return True

    async def drain(self):
        """Wait for the background task (shutdown, tests): every repair written or given up."""
        if self.task is not None and not self.task.done():
            await self.task
