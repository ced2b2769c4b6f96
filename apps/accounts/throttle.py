"""Login throttling: a fixed window of failures per account and per client address."""

import time

from django.conf import settings
from django.core.cache import cache


def _keys(username, address):
    keys = []
    if username:
        keys.append(f"login-fail:user:{username.strip().lower()}")
    if address:
        keys.append(f"login-fail:addr:{address}")
    return keys


def seconds_until_allowed(*, username, address):
    """0 if a login may be tried now; otherwise how many seconds until the window resets."""
    now = time.time()
    for key in _keys(username, address):
        count = cache.get(key, 0)
        if count >= settings.LOGIN_FAILURE_LIMIT:
            started = cache.get(f"{key}:start", now)
            return max(1, int(started + settings.LOGIN_FAILURE_WINDOW - now + 0.999))
    return 0


def record_failure(*, username, address):
    for key in _keys(username, address):
        if cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW):
            cache.set(f"{key}:start", time.time(), timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)


def clear_failures(*, username):
    for key in _keys(username, None):
        cache.delete_many([key, f"{key}:start"])
