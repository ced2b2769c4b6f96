"""Pools: one model name served by several models of the file (config ``pools``), with failover.

``stream_pool(pool, call, messages, **options)`` streams an answer for the pool spec ``pool``
(``ModelSpec.members`` set) through ``call`` (``client.stream_chat`` or
``responses.stream_responses``), one member at a time:

- Members go in the file's order, healthy ones first (apps.azure.health: this process's view and
  the shared one). A member cooling down after a 429 (for its Retry-After) is not sent to at all;
  when every member is, the user is told when to try again and nothing is sent.
- A 429, a 5xx, an unreachable member or one that stays silent, before the stream's first event,
  moves the answer to the next member at once: members with another behind them do not wait for
  a Retry-After (``ModelSpec.fails_over``); the last one tried waits as a plain model does.
- Once a member has sent anything (text, a tool call), its error is the answer's: no retry, so
  no text is ever written twice.

Each move sends ``apps.azure.signals.upstream_failover``. Access is the pool's (checked by the
caller before the answer starts); members are reached only through it.
"""

import logging
from contextlib import aclosing
from dataclasses import replace

from apps.azure import health
from apps.azure.client import Retry
from apps.azure.errors import UpstreamError, wait_phrase
from apps.azure.registry import ModelSpec
from apps.azure.signals import upstream_failover

logger = logging.getLogger("lapis.azure")


def failover_reason(exc):
    """Why ``exc`` (an UpstreamError before any text) moves to the next member, or None."""
    if exc.status == 429 or exc.code == "rate_limited":
        return "rate_limited"
    if exc.status is not None and exc.status >= 500:
        return "server_error"
    if exc.code == "upstream_unreachable":
        return "unreachable"
    if exc.code == "upstream_stalled":
        return "stalled"
    return None


async def members_in_order(pool):
    """(members to try, in order; seconds until the first resting one may be tried, or None)."""
    keys = [health.key_of(member) for member in pool.members]
    shared = await health.ashared(keys)
    ranked, resting = [], []
    for index, (member, key) in enumerate(zip(pool.members, keys, strict=True)):
        rest = max(health.cooling(key), health.shared_cooling(shared.get(key)))
        if rest > 0:
            resting.append(rest)
            continue
        unwell = health.state(key) != health.OK or key in shared
        ranked.append((unwell, index, member))
    ranked.sort(key=lambda item: item[:2])
    return [member for _, _, member in ranked], (min(resting) if resting else None)


async def stream_pool(pool, call, messages, **options):
    """Events of one answer from the first member of ``pool`` that gives one; raises only
    UpstreamError (see the module docstring)."""
    members, rest = await members_in_order(pool)
    if not members:
        raise UpstreamError(
            "rate_limited",
            f"Every deployment of {pool.label} is busy (rate limit reached). Try again {wait_phrase(rest)}.",
            admin_detail=f"pool {pool.key}: every member is cooling down after a 429",
            retry_after=rest, status=429,
        )
    for index, member in enumerate(members):
        last = index == len(members) - 1
        started = False
        events = call(member if last else replace(member, fails_over=True), messages, **options)
        try:
            async with aclosing(events):
                async for event in events:
                    started = started or not isinstance(event, Retry)
                    yield event
            return
        except UpstreamError as exc:
            reason = failover_reason(exc)
            if started or last or reason is None:
                raise
            following = members[index + 1]
            logger.warning("pool %s: %s (%s) failed before any text (%s); trying %s (%s)",
                           pool.key, member.key, member.group, exc.admin_detail, following.key,
                           following.group)
            upstream_failover.send(sender=ModelSpec, model=pool.key, from_group=member.group,
                                   to_group=following.group, reason=reason)
