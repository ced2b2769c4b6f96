"""One HTTP exchange on raw ASGI: body, JSON answers, streamed answers, disconnect detection."""

import asyncio
import json
from urllib.parse import parse_qsl

from .wire import dumps

MAX_BODY = 64 * 1024 * 1024


class Exchange:
    """Wraps ``(scope, receive, send)``; ``disconnected`` is set when the client goes away."""

    def __init__(self, scope, receive, send):
        self.scope, self._receive, self._send = scope, receive, send
        self.method = scope["method"]
        self.path = scope["path"]
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        self.body = b""
        self.status = None
        self.started = False
        self.ended = False
        self.disconnected = asyncio.Event()
        self._watcher = None

    @property
    def base_url(self):
        host = self.headers.get("host") or "{}:{}".format(*self.scope["server"])
        return f"{self.scope.get('scheme', 'http')}://{host}"

    async def read_body(self):
        chunks, size = [], 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY:
                raise ValueError("request body too large")
            if not message.get("more_body"):
                break
        self.body = b"".join(chunks)
        return self.body

    def json(self):
        """The parsed body, or None when empty; raises ValueError for bad JSON."""
        if not self.body:
            return None
        return json.loads(self.body)

    def watch_disconnect(self):
        """Start noticing the client closing the connection (call once the body is read)."""
        if self._watcher is None and not self.disconnected.is_set():
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self):
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.ended:
                    self.disconnected.set()
                return

    def close(self):
        if self._watcher is not None:
            self._watcher.cancel()

    async def start(self, status, headers):
        self.status = status
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), str(v).encode()) for k, v in headers],
            }
        )

    async def write(self, data):
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data=b""):
        self.ended = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def respond(self, status, body, headers=(), content_type="application/json"):
        if isinstance(body, (dict, list)):
            data = dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        all_headers = [("content-type", content_type), ("content-length", len(data)), *headers]
        await self.start(status, all_headers)
        await self.end(data)

    async def pause(self, seconds):
        """Sleep ``seconds``; returns False early if the client disconnected meanwhile."""
        if seconds <= 0:
            return not self.disconnected.is_set()
        try:
            await asyncio.wait_for(self.disconnected.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False
