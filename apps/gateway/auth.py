"""Who is calling: the personal API key in ``Authorization: Bearer`` (or ``api-key``, as Azure
clients send it) → its user, checked as the key's state and the user's right to keys."""

from datetime import timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.gateway.errors import ApiError
from apps.gateway.models import ApiKey, digest
from apps.gateway.selectors import may_use_keys

LAST_USED_EVERY = timedelta(minutes=1)  # one write per key per minute, not one per call


def presented_key(request):
    """The key text of the request, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("api-key", "").strip() or None


async def authenticate(request):
    """The ApiKey (with ``user``) behind ``request``; raises ApiError 401/403."""
    raw = presented_key(request)
    if raw is None:
        raise ApiError(
            401,
            "No API key given. Send your Lapis API key as 'Authorization: Bearer <key>' "
            "(create one in Lapis under Settings → API keys).",
            code="missing_api_key",
        )
    key = await ApiKey.objects.select_related("user").filter(digest=digest(raw)).afirst()
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
    if not await sync_to_async(may_use_keys)(user=key.user):
        raise ApiError(403, "API keys are not enabled for your account. Ask an admin to add you "
                       "to a group that may use them.", code="api_keys_not_enabled")
    if key.last_used is None or now - key.last_used > LAST_USED_EVERY:
        await ApiKey.objects.filter(pk=key.pk).aupdate(last_used=now)
    return key
