"""Deployment health: a rolling view, per process, of how each Azure deployment answers.

Fed by the stream reader (``client.stream_events``: one ``Probe`` per HTTP call) with each
call's outcome: the time to its first chunk, an error, a 429. Kept per (group, deployment) for
the last ``WINDOW`` seconds and at most ``MAX_CALLS`` calls, in memory (no I/O on the answer
path). ``snapshot()`` is the admin page's table.

"Right now" (``state``) looks at the latest calls only, so it flips on the first call that
tells: a deployment is ``rate_limited`` while a Retry-After it sent runs (its *cool-down*,
which pools honour; DEFAULT_COOL_DOWN when a 429 names none), ``failing`` when most of its
latest ``LATEST`` calls got a server error or no answer (the latest included), else ``ok``. A
success ends a cool-down; failures older than ``RECENT`` seconds no longer count.

Shared view: each process writes a deployment's state to the cache (Redis with ``REDIS_URL``)
when it *changes*, with the cool-down's end, and deletes it when the deployment is ``ok`` again;
entries expire on their own. The user banner (``apps.azure.views.model_health``) and the pools'
member order read that, so every process sees a region that one of them found throttled.
"""

import asyncio
import concurrent.futures
import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote

from django.core.cache import cache

logger = logging.getLogger("lapis.azure")
WINDOW = 300.0  # seconds of calls kept per deployment
MAX_CALLS = 200  # calls kept per deployment, at most
RECENT = 60.0  # seconds a failure counts for "right now"
LATEST = 3  # "right now" is decided by this many latest calls
DEFAULT_COOL_DOWN = 5.0  # seconds a 429 without Retry-After rests its deployment
MAX_COOL_DOWN = 3600.0
CACHE_PREFIX = "lapis:health:"
OK, RATE_LIMITED, FAILING = "ok", "rate_limited", "failing"
# Outcomes that say nothing bad about the deployment: the request itself was refused.
CLIENT_CODES = frozenset({
    "content_filter_prompt", "content_filter_answer", "context_length_exceeded", "bad_request",
    "content_policy",
})


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() when it ended
    outcome: str  # OK, RATE_LIMITED or FAILING
    latency: float | None  # seconds to the first chunk, when one came
    status: int | None = None


class _Deployment:
    __slots__ = ("calls", "cool_until", "state")

    def __init__(self):
        self.calls = deque(maxlen=MAX_CALLS)
        self.cool_until = 0.0  # time.monotonic()
        self.state = OK


_views = {}  # (group, deployment) -> _Deployment
_tasks = set()  # cache writes in flight (kept so they are not collected mid-way)
# One thread writes the shared view, so a deployment's changes reach the cache in order.
_writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lapis-health")


def key_of(spec):
    return (spec.group, spec.deployment or spec.key)


def cache_key(group, deployment):
    return f"{CACHE_PREFIX}{quote(group, safe='')}:{quote(deployment, safe='')}"


def outcome_of(*, status=None, code=None):
    """OK, RATE_LIMITED or FAILING for a call that got ``status`` / raised ``code``."""
    if status == 429 or code == "rate_limited":
        return RATE_LIMITED
    if code in CLIENT_CODES or (status is not None and 400 <= status < 500 and status not in (401, 403, 404, 408)):
        return OK
    return FAILING if (code or (status or 0) >= 400) else OK


def record(key, *, outcome, latency=None, status=None, retry_after=None):
    """Add one call of deployment ``key`` (``key_of(spec)``); a 429 starts its cool-down
    (``retry_after`` seconds, else DEFAULT_COOL_DOWN), a success ends it."""
    now = time.monotonic()
    view = _views.get(key)
    if view is None:
        view = _views[key] = _Deployment()
    view.calls.append(Call(now, outcome, latency, status))
    if outcome == RATE_LIMITED:
        wait = DEFAULT_COOL_DOWN if retry_after is None else min(max(retry_after, 0.0), MAX_COOL_DOWN)
        view.cool_until = max(view.cool_until, now + wait)
    elif outcome == OK:
        view.cool_until = 0.0
    state = _state(view, now)
    if state != view.state or outcome == RATE_LIMITED:  # a new 429 moves the shared cool-down
        if state != view.state:
            logger.info("deployment %s/%s is now %s", key[0], key[1], state)
        view.state = state
        _publish(key, view, now)


def cooling(key):
    """Seconds left of deployment ``key``'s cool-down in this process (0: none)."""
    view = _views.get(key)
    return max(view.cool_until - time.monotonic(), 0.0) if view else 0.0


def state(key):
    view = _views.get(key)
    return _state(view, time.monotonic()) if view else OK


def _state(view, now):
    if view.cool_until > now:
        return RATE_LIMITED
    latest = [c for c in list(view.calls)[-LATEST:] if now - c.at <= RECENT]
    if not latest or latest[-1].outcome != FAILING:
        return OK
    failed = sum(1 for c in latest if c.outcome == FAILING)
    return FAILING if failed * 2 > len(latest) or len(latest) == 1 else OK


def _publish(key, view, now):
    """Write the change to the shared view without blocking the caller (a task, or inline
    outside an event loop)."""
    left = max(view.cool_until - now, 0.0)
    entry = {"state": view.state, "until": time.time() + left if left else None, "at": time.time()}
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _write(key, entry, left)
        return
    task = loop.run_in_executor(_writer, _write, key, entry, left)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _write(key, entry, left):
    try:
        if entry["state"] == OK:
            cache.delete(cache_key(*key))
        else:
            timeout = left if entry["state"] == RATE_LIMITED else RECENT
            cache.set(cache_key(*key), entry, timeout=timeout + 1)
    except Exception:  # the shared view is a courtesy: a cache outage must not fail answers
        logger.warning("could not share the health of %s/%s", *key, exc_info=True)


def shared(keys):
    """``{key: {"state", "until"}}`` of the deployments ``keys`` that some process found not
    ok (the cache's view; entries whose cool-down and RECENT window are over are dropped)."""
    names = {cache_key(*key): key for key in keys}
    try:
        found = cache.get_many(list(names))
    except Exception:
        logger.warning("could not read the shared deployment health", exc_info=True)
        return {}
    now = time.time()
    return {
        names[name]: entry for name, entry in found.items()
        if isinstance(entry, dict) and not (entry.get("state") == RATE_LIMITED and (entry.get("until") or 0) <= now)
    }


async def ashared(keys):
    return await asyncio.get_running_loop().run_in_executor(None, shared, keys)


def shared_cooling(entry):
    """Seconds left of the cool-down in a ``shared`` entry (0: none)."""
    until = entry.get("until") if entry else None
    return max(until - time.time(), 0.0) if until else 0.0


class Probe:
    """One HTTP call to ``spec``'s deployment: ``first_chunk()`` when the stream starts,
    ``failed(...)`` for an error, ``close()`` at the end (records a success if nothing else)."""

    __slots__ = ("key", "started", "latency", "done")

    def __init__(self, spec):
        self.key = key_of(spec)
        self.started = time.monotonic()
        self.latency = None
        self.done = False

    def first_chunk(self):
        if self.latency is None:
            self.latency = time.monotonic() - self.started

    def failed(self, *, status=None, code=None, retry_after=None):
        """A failed attempt; after a 429 the call may be sent again (a new attempt starts)."""
        record(self.key, outcome=outcome_of(status=status, code=code), latency=self.latency,
               status=status, retry_after=retry_after)
        self.started = time.monotonic()
        self.done = True

    def retrying(self):
        self.done = False

    def close(self):
        if not self.done and self.latency is not None:
            record(self.key, outcome=OK, latency=self.latency)
        self.done = True


def snapshot():
    """This process's view for the admin page: one row per deployment, worst first."""
    now = time.monotonic()
    rows = []
    for (group, deployment), view in list(_views.items()):
        calls = [c for c in view.calls if now - c.at <= WINDOW]
        latencies = sorted(c.latency for c in calls if c.latency is not None)
        count = len(calls)
        errors = sum(1 for c in calls if c.outcome == FAILING)
        limited = sum(1 for c in calls if c.outcome == RATE_LIMITED)
        rows.append({
            "group": group,
            "deployment": deployment,
            "state": _state(view, now),
            "calls": count,
            "error_rate": errors / count if count else 0.0,
            "rate_limited_rate": limited / count if count else 0.0,
            "latency_p50": statistics.median(latencies) if latencies else None,
            "latency_p95": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] if latencies else None,
            "cooling": max(view.cool_until - now, 0.0),
        })
    order = {RATE_LIMITED: 0, FAILING: 0, OK: 1}
    rows.sort(key=lambda row: (order[row["state"]], row["group"], row["deployment"]))
    return rows


def forget():
    """Drop this process's view (tests)."""
    _views.clear()
