"""Request-body limits by address, and the ASGI guard that applies them under any server.

The limit depends on the URL only (who is signed in is not known before Django runs):
``REQUEST_MAX_BYTES`` everywhere, larger for the image upload, the import and the model-group config load,
whose views then check the session and their own limits. ``project.server`` (Daphne) applies it
before a body is read; ``BodyLimit`` applies it in the ASGI layer for servers that stream bodies
to the application (uvicorn and the like), and as a second line behind ``project.server``.
"""

import json

from django.conf import settings
from django.urls import Resolver404, resolve


def body_limit(path):
    """The most bytes a request body to ``path`` (no query string) may have."""
    from apps.azure.config import MAX_BYTES as CONFIG_MAX_BYTES
    from apps.media.views import MULTIPART_SLACK

    try:
        name = resolve(path).view_name
    except Resolver404:
        return settings.REQUEST_MAX_BYTES
    if name == "media:upload":
        return settings.UPLOAD_MAX_BYTES + MULTIPART_SLACK
    if name == "transfer:page":  # the import form posts its export file here
        return settings.IMPORT_MAX_BYTES + MULTIPART_SLACK
    if name == "gateway:transcriptions":
        from apps.gateway.checks_input import AUDIO_MAX_BYTES

        return AUDIO_MAX_BYTES + MULTIPART_SLACK  # Whisper's file limit, as a form
    if name in ("gateway:chat_completions", "gateway:embeddings"):
        return settings.API_REQUEST_MAX_BYTES  # images as data URLs; many embedding inputs
    if name == "admin:azure_configversion_add":
        # The load form takes a file and a pasted text, each up to the config limit.
        return 2 * CONFIG_MAX_BYTES + MULTIPART_SLACK
    return settings.REQUEST_MAX_BYTES


def too_large(limit, *, size=None, path=""):
    """The JSON body of a 413 answer: the body's ``size`` when it was declared, and the limit
    (OpenAI's error shape under /v1/, where the callers are OpenAI clients)."""
    from apps.media.images import human_bytes  # imports models: not before the apps load

    what = f"is {human_bytes(size)}" if size is not None else "is larger"
    message = f"The request body {what}; the limit for this address is {human_bytes(limit)}."
    if path.startswith("/v1/"):
        return json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                     "param": None, "code": "request_too_large"}}).encode()
    return json.dumps({"error": message}).encode()


class BodyLimit:
    """ASGI middleware: an HTTP request whose body is over ``body_limit`` gets 413.

    A declared length over the limit is refused before the application runs; a body that
    grows over it (chunked, or longer than declared) is refused at that chunk, and the
    application sees a disconnect (Django reads the whole body before a view runs, so it has
    answered nothing yet).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await _refuse(send, too_large(limit, size=int(declared), path=scope["path"]))
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _refuse(send, too_large(limit, path=scope["path"]))
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, counted, send)


async def _refuse(send, body):
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
