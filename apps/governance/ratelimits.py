"""Per-user rate limits, shared by every process through Django's cache (Redis with REDIS_URL).

- Answers per minute: a FIXED window per calendar minute (UTC epoch minute). One key per user and
  minute; ``cache.incr(key)`` (``cache.add`` first when the key is new), both atomic in Redis
  (INCR, SET NX) and in LocMem (under its lock): one round trip per check in a flood. Fixed, not sliding: one counter and one round trip per check; the
  price is that a burst straddling a minute's edge may start up to twice the limit within 60 s.
- Answers running at once and open sockets: SLOTS. A claim is ``cache.add`` of the first free key
  of ``<kind>:<user>:0 .. limit-1`` (SET NX: two processes cannot both win a slot); a release
  deletes it. This process touches the slots it holds every SLOT_TTL/3, so the slots of a process
  that died (no release ran) expire after ``RATE_LIMIT_SLOT_TTL`` seconds.

Cache calls run in a worker thread (``thread_sensitive=False``): a flood of frames neither blocks
the event loop on Redis nor queues behind the database work of other users on the sync thread.

Checks run before anything is stored or sent upstream (apps.chat.consumers). An answer's slot is
released by a done-callback on its generation task, which runs however the task ends: complete,
error, stop, cancellation at shutdown. Nothing here imports apps.chat (chat imports this).
"""

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q

# Admin changes reach a process's checks within this many seconds (one query per user per period
# instead of one per frame: a flood of frames must not become a flood of queries).
LIMITS_CACHE_SECONDS = 10
AT_ONCE_RETRY_SECONDS = 2  # a polling hint: a slot frees when one of the user's answers ends
SOCKET_CLOSE_CODE = 4429

_limits_cache = {}  # user id → (expires monotonic, Limits)
_held = {}  # slot key → token, the slots this process holds (touched by the refresher)
_refresher = None


class RateLimited(Exception):
    """Over a limit: ``code`` ``rate_limited``, a ``message`` for people, ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message, *, retry_after, limit):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.limit = limit  # "answers_per_minute" | "answers_at_once" | "sockets"


@dataclass(frozen=True)
class Limits:
    """0 means no limit."""

    answers_per_minute: int
    answers_at_once: int
    sockets: int


FIELDS = ("answers_per_minute", "answers_at_once", "sockets")


def default_limits():
    return Limits(
        answers_per_minute=settings.CHAT_ANSWERS_PER_MINUTE,
        answers_at_once=settings.CHAT_ANSWERS_AT_ONCE,
        sockets=settings.CHAT_SOCKETS_PER_USER,
    )


def limits_for(*, user):
    """The user's limits: their own RateLimit row's set fields, else the most generous of their
    groups' rows (a group grants; 0, no limit, is the most generous), else the settings."""
    from apps.governance.models import RateLimit

    rows = list(RateLimit.objects.filter(Q(user_id=user.pk) | Q(group__user=user.pk)))
    values = {}
    for name in FIELDS:
        own = [getattr(r, name) for r in rows if r.user_id == user.pk and getattr(r, name) is not None]
        groups = [getattr(r, name) for r in rows if r.user_id is None and getattr(r, name) is not None]
        if own:
            values[name] = own[0]
        elif groups:
            values[name] = 0 if 0 in groups else max(groups)
        else:
            values[name] = getattr(default_limits(), name)
    return Limits(**values)


async def alimits_for(*, user):
    """``limits_for``, remembered for LIMITS_CACHE_SECONDS in this process."""
    now = time.monotonic()
    cached = _limits_cache.get(user.pk)
    if cached and cached[0] > now:
        return cached[1]
    limits = await sync_to_async(limits_for)(user=user)
    _limits_cache[user.pk] = (now + LIMITS_CACHE_SECONDS, limits)
    return limits


def forget_limits():
    """Drop this process's remembered limits (tests; an admin change otherwise waits out the TTL)."""
    _limits_cache.clear()


def slot_ttl():
    return max(int(settings.RATE_LIMIT_SLOT_TTL), 3)


class Permit:
    """A claimed slot (or none, when there is no limit). ``release()`` is idempotent."""

    def __init__(self, key=None):
        self.key = key
        self.kept = False

    def release(self):
        key, self.key = self.key, None
        if key is not None:
            _held.pop(key, None)
            cache.delete(key)  # sync on purpose: it also runs from a task's done-callback

    def hold_for(self, task):
        """Keep the slot until ``task`` ends, however it ends."""
        self.kept = True
        task.add_done_callback(lambda _task: self.release())


async def _cache(name, *args, **kwargs):
    return await sync_to_async(getattr(cache, name), thread_sensitive=False)(*args, **kwargs)


async def _claim(kind, user_id, limit):
    """A Permit for one of ``limit`` slots of ``kind``, or None when all are taken."""
    if not limit:
        return Permit()
    token = uuid.uuid4().hex
    for index in range(limit):
        key = f"lapis:rl:{kind}:{user_id}:{index}"
        if await _cache("add", key, token, timeout=slot_ttl()):
            _held[key] = token
            _ensure_refresher()
            return Permit(key)
    return None


async def _count_minute(user_id, limit):
    """Count one answer in this minute's window; return an undo (for a refusal by another
    limit) or raise RateLimited past ``limit``."""
    if not limit:
        return _nothing
    now = time.time()
    window = int(now // 60)
    key = f"lapis:rl:apm:{user_id}:{window}"
    try:
        count = await _cache("incr", key)
    except ValueError:  # the minute's first answer; 90 s: the key outlives its minute
        count = 1 if await _cache("add", key, 1, timeout=90) else await _cache("incr", key)
    if count > limit:
        retry = max(1, math.ceil((window + 1) * 60 - now))
        raise RateLimited(
            f"You have started {limit} answer{'s' if limit != 1 else ''} this minute, the most "
            f"allowed. Try again in {retry} second{'s' if retry != 1 else ''}.",
            retry_after=retry, limit="answers_per_minute",
        )

    async def undo():
        with contextlib.suppress(ValueError):
            await _cache("decr", key)

    return undo


async def _nothing():
    pass


@contextlib.asynccontextmanager
async def answer_permit(*, user):
    """Check the user's answer limits before anything is stored; yield a Permit for the
    running-at-once slot. Call ``permit.hold_for(task)`` once the generation runs; otherwise
    (refused, a repeated client id, an error) the slot is released on leaving the block."""
    limits = await alimits_for(user=user)
    uncount = await _count_minute(user.pk, limits.answers_per_minute)  # a flood stops here
    permit = await _claim("running", user.pk, limits.answers_at_once)
    if permit is None:
        await uncount()  # not started: it does not count in the minute
        raise RateLimited(
            f"You have {limits.answers_at_once} answer{'s' if limits.answers_at_once != 1 else ''} "
            "being written, the most allowed at once. Send again when one of them has finished.",
            retry_after=AT_ONCE_RETRY_SECONDS, limit="answers_at_once",
        )
    try:
        yield permit
    finally:
        if not permit.kept:
            permit.release()


async def socket_permit(*, user):
    """A Permit for one open socket of ``user`` (release it on disconnect), or RateLimited."""
    limits = await alimits_for(user=user)
    permit = await _claim("socket", user.pk, limits.sockets)
    if permit is None:
        raise RateLimited(
            f"You have {limits.sockets} Lapis tabs or windows open, the most allowed. Close one "
            "and reload this page.",
            retry_after=slot_ttl(), limit="sockets",
        )
    return permit


def _ensure_refresher():
    """One touching task per event loop (each test has its own loop; a server has one)."""
    global _refresher
    loop = asyncio.get_running_loop()
    if _refresher is None or _refresher.done() or _refresher.get_loop() is not loop:
        _refresher = loop.create_task(_refresh(), name="rate-limit-slots")


async def _refresh():
    while _held:
        await asyncio.sleep(slot_ttl() / 3)
        for key, token in list(_held.items()):
            # A slot lost to eviction or a Redis restart is claimed again when still free.
            if not await _cache("touch", key, slot_ttl()):
                await _cache("add", key, token, timeout=slot_ttl())
