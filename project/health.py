"""``/healthz``: is this process able to serve? Database, channel layer and the answers this
process could not save (apps.chat.checkpoints), as JSON."""

import asyncio
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse

from apps.chat import checkpoints

CHANNEL_LAYER_TIMEOUT = 2.0


def _check_database():
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means "not healthy"
        connection.close()
        return f"error: {type(exc).__name__}"


async def _check_channel_layer():
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    try:
        channel = await layer.new_channel("healthz.")
        token = uuid.uuid4().hex
        await asyncio.wait_for(
            layer.send(channel, {"type": "healthz", "token": token}), CHANNEL_LAYER_TIMEOUT
        )
        message = await asyncio.wait_for(layer.receive(channel), CHANNEL_LAYER_TIMEOUT)
        return "ok" if message.get("token") == token else "error: wrong message"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


@login_not_required
async def healthz(request):
    """200 with ``{"status": "ok", ...}`` when everything answers; 503 naming what does not."""
    checks = {
        "database": await sync_to_async(_check_database, thread_sensitive=True)(),
        "channel_layer": await _check_channel_layer(),
        # e.g. "1 finished answer(s) not saved yet, checkpoints failing for 12 s, last error
        # OperationalError": the database refused writes even if SELECT 1 works again.
        "answers": checkpoints.health(),
    }
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )
