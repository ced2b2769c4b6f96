"""Login throttling: a fixed window of failures per account and (a much higher one) per address.

The account key is the username as Django normalises it (NFKC) and case-folded, so ``ａｌｉｃｅ`` and
``ALICE`` share ``alice``'s bucket. The address is the client's as seen by the last trusted proxy
(``client_address``), never the spoofable leftmost ``X-Forwarded-For`` entry.
"""

import logging
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("lapis.accounts")


def normalise_username(username):
    return unicodedata.normalize("NFKC", username or "").strip().casefold()


def client_address(request):
    """The client's address: with N trusted proxies, the N-th entry from the right of
    X-Forwarded-For (each proxy appends the address it saw); with none, REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < count:
        # Fewer entries than proxies: the request did not pass all of them, so no entry can be
        # trusted; the socket peer is the best we know.
        return remote
    return forwarded[-count]


def _keys(username, address):
    keys = []
    name = normalise_username(username)
    if name:
        keys.append((f"login-fail:user:{name}", settings.LOGIN_FAILURE_LIMIT))
    if address:
        keys.append((f"login-fail:addr:{address}", settings.LOGIN_ADDRESS_FAILURE_LIMIT))
    return keys


def seconds_until_allowed(*, username, address):
    """0 if a login may be tried now; otherwise how many seconds until the window resets."""
    now = time.time()
    for key, limit in _keys(username, address):
        count = cache.get(key, 0)
        if count >= limit:
            started = cache.get(f"{key}:start", now)
            return max(1, int(started + settings.LOGIN_FAILURE_WINDOW - now + 0.999))
    return 0


def record_failure(*, username, address):
    for key, _limit in _keys(username, address):
        if cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW):
            cache.set(f"{key}:start", time.time(), timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)


def clear_failures(*, username):
    for key, _limit in _keys(username, None):
        cache.delete_many([key, f"{key}:start"])


def log_refusal(*, kind, username, address, reason):
    """One line per failed or throttled sign-in: what, who (as typed, truncated), from where.
    Never a password or token."""
    logger.warning(
        "sign-in %s for %r from %s: %s", kind, (username or "")[:80], address or "?", reason
    )
