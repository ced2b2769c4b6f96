"""Who is acting right now, for audit entries written far from the request (model signals,
services): set per request by ``AuditContextMiddleware``, or by ``acting()`` in commands."""

import contextlib
import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    user: object = None  # an authenticated user, or None
    name: str = "system"
    address: str = ""


SYSTEM = Actor()
_current = contextvars.ContextVar("lapis_audit_actor", default=None)


def current():
    """The Actor of this request or command (``SYSTEM`` when none is set)."""
    return _current.get() or SYSTEM


@contextlib.contextmanager
def acting(*, name, user=None, address=""):
    """Attribute the audit entries written inside the block to ``name`` (e.g. a command)."""
    token = _current.set(Actor(user=user, name=name, address=address))
    try:
        yield
    finally:
        _current.reset(token)


def actor_for(request):
    from apps.accounts.throttle import client_address

    user = getattr(request, "user", None)
    address = client_address(request)
    if user is not None and user.is_authenticated:
        return Actor(user=user, name=user.get_username(), address=address)
    return Actor(name="anonymous", address=address)


class AuditContextMiddleware:
    """Makes the signed-in user and client address the actor of this request's audit entries
    (after AuthenticationMiddleware; ``request.user`` stays lazy until an entry needs it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current.set(_LazyActor(request))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)


class _LazyActor:
    """Resolved on first use: most requests write no audit entry and need no user query."""

    def __init__(self, request):
        self._request = request
        self._actor = None

    def __getattr__(self, name):
        if self._actor is None:
            self._actor = actor_for(self._request)
        return getattr(self._actor, name)
