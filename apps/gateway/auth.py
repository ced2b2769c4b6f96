"""Who is calling: the personal API key in ``Authorization: Bearer`` (or ``api-key``, as Azure
clients send it) → its user, checked as the key's state and the user's right to keys."""

import time
from datetime import timedelta

from django.utils import timezone

from apps.gateway.errors import ApiError
from apps.gateway.models import ApiKey, digest
from apps.gateway.selectors import may_use_keys

LAST_USED_EVERY = timedelta(minutes=1)  # one write per key per minute, not one per call
# Whether a user may use keys (the group permission) is remembered this long per process: two
# permission queries per call would be most of an API call's database work. Taking a user out
# of the group stops their keys within this many seconds (revoking a key: at once).
PERMISSION_CACHE_SECONDS = 10
_permitted = {}  # user id → (expires monotonic, bool)


def presented_key(request):
    """The key text of the request, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("api-key", "").strip() or None


def authenticate(request):
    """The ApiKey (with ``user``) behind ``request``; raises ApiError 401/403. Sync (database):
    the views call it with the rest of a call's checks in one thread hop."""
    raw = presented_key(request)
    if raw is None:
        raise ApiError(
            401,
            "No API key given. Send your Lapis API key as 'Authorization: Bearer <key>' "
            "(create one in Lapis under API keys).",
            code="missing_api_key",
        )
    key = ApiKey.objects.select_related("user").filter(digest=digest(raw)).first()
    now = timezone.now()
    shown = raw[:10] + "…" if len(raw) > 10 else "…"
    if key is None or not key.user.is_active:
        raise ApiError(401, f"Incorrect API key provided: {shown}. Check the key or create a new one.",
                       code="invalid_api_key")
    state = key.state(now=now)
    if state == "revoked":
        raise ApiError(401, f"The API key {key.prefix}… was revoked. Create a new one in Lapis.",
                       code="invalid_api_key")
    if state == "expired":
        raise ApiError(401, f"The API key {key.prefix}… expired on {key.expires:%Y-%m-%d %H:%M} UTC. "
                       "Create a new one in Lapis.", code="invalid_api_key")
    if not _may_use_keys(key.user):
        raise ApiError(403, "API keys are not enabled for your account. Ask an admin to add you "
                       "to a group that may use them.", code="api_keys_not_enabled")
    if key.last_used is None or now - key.last_used > LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used=now)
    return key


def _may_use_keys(user):
    clock = time.monotonic()
    cached = _permitted.get(user.pk)
    if cached and cached[0] > clock:
        return cached[1]
    allowed = may_use_keys(user=user)
    if len(_permitted) > 10_000:
        _permitted.clear()
    _permitted[user.pk] = (clock + PERMISSION_CACHE_SECONDS, allowed)
    return allowed
