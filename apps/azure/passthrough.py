"""Calls for the OpenAI-compatible API (apps.gateway): a caller's own request body, routed like
chat (the model's group: URL, auth — key or Entra —, api-version, addParams, dropParams) and the
answer handed back nearly as Azure sent it.

- ``chat_body(spec, body, stream=...)``: the body Azure gets for a caller's chat request.
- ``stream_chat_chunks(spec, body)``: the streamed answer as ``Chunk`` objects (each chunk's JSON
  as Azure sent it) and a last ``Usage`` when Azure counted; raises only UpstreamError (the first
  one before anything is yielded when Azure refuses the request: 4xx/5xx, after the retries).
- ``post_json(spec, route, body)``: a non-streamed call (chat, embeddings): Azure's JSON answer.
- ``post(spec, route, json_body= | fields=, file=)``: any other call (audio speech and
  transcriptions): Azure's content type and body bytes.

Streaming goes through the same reader as answers (``client.stream_events``: aiohttp, retries
before the first byte, idle timeout, disconnects passed on); the SDK is not used for the same
reason as there (cost per chunk).
"""

import asyncio
import json
from dataclasses import dataclass

import aiohttp

from apps.azure import client
from apps.azure.errors import UpstreamError
from apps.azure.sse import DONE


@dataclass(frozen=True)
class Chunk:
    """One chat-completion chunk, the JSON object Azure sent."""

    data: dict


def chat_body(spec, body, *, stream):
    """The body for ``spec``'s deployment: the caller's parameters (``model`` replaced by the
    deployment), then the group's addParams, then dropParams, with the reasoning-model fixes of
    chat (``client.merge_params``). Streamed calls always ask Azure for usage when the
    api-version has ``stream_options`` (Lapis records it; the gateway hides it from a caller
    who did not ask); where it has not, the caller's ``stream_options`` is dropped too."""
    params = {name: value for name, value in body.items() if name != "model"}
    merged = client.merge_params(spec, params)
    merged["stream"] = bool(stream)
    if stream:
        if client.supports_stream_options(spec.api_version) and "stream_options" not in spec.drop_params:
            merged["stream_options"] = {**(merged.get("stream_options") or {}), "include_usage": True}
        else:
            merged.pop("stream_options", None)
    else:
        merged.pop("stream_options", None)
    return {"model": spec.deployment, **merged}


def plain_body(spec, body):
    """The caller's embeddings parameters for ``spec``; dropParams apply (addParams are written
    for chat and would break an embeddings call)."""
    merged = {name: value for name, value in body.items() if name != "model"}
    for name in spec.drop_params:
        merged.pop(name, None)
    return {"model": spec.deployment, **merged}


class _ChunkPasser:
    """A reader for ``client.stream_events`` that keeps each chunk whole (see client._ChunkReader)."""

    def __init__(self, model):
        self.model = model
        self.done = False
        self.error = None

    def read(self, events):
        out = []
        for kind, data in events:
            if kind is not None and kind != "message":
                if kind == "error":
                    self.error = client._stream_error(self.model, _loads(data, self.model))
                    break
                continue
            if data.startswith(DONE):
                self.done = True
                break
            try:
                chunk = _loads(data, self.model)
            except UpstreamError as exc:
                self.error = exc
                break
            if not isinstance(chunk, dict):
                self.error = client._malformed(self.model, "a data event that is not an object")
                break
            if chunk.get("error"):
                self.error = client._stream_error(self.model, chunk)
                break
            out.append(Chunk(chunk))
        return out

    def unfinished(self):
        return None

    def pending_calls(self):
        return ()


def _loads(data, model):
    try:
        return json.loads(data)
    except ValueError:
        raise client._malformed(model, "a data event that is not JSON") from None


def _route_url(spec, route):
    return client.stream_url(spec.target, spec.deployment, route)


def _query(spec):
    return {"api-version": spec.target.api_version} if spec.target.api_version else None


async def stream_chat_chunks(spec, body, *, idle_timeout=60.0, session=None):
    """Stream ``body`` (from ``chat_body``) to ``spec``: yields ``Chunk`` (``Retry`` events of
    the reader are dropped: the caller waits the same either way)."""
    events = client.stream_events(
        spec, _route_url(spec, "chat/completions"), _query(spec), body,
        reader=_ChunkPasser(spec), idle_timeout=idle_timeout, session=session,
    )
    try:
        async for event in events:
            if isinstance(event, Chunk):
                yield event
    finally:
        await events.aclose()


async def post_json(spec, route, body, *, timeout=600.0, session=None):
    """POST ``body`` to ``route`` ("chat/completions", "embeddings") of ``spec`` and return the
    JSON answer; raises only UpstreamError (see ``post``)."""
    _content_type, payload = await post(spec, route, json_body=body, timeout=timeout, session=session)
    try:
        data = json.loads(payload)
    except ValueError:
        raise client._malformed(spec, "an answer that is not JSON") from None
    if not isinstance(data, dict):
        raise client._malformed(spec, "an answer that is not an object")
    return data


async def post(spec, route, *, json_body=None, fields=None, file=None, timeout=600.0, session=None):
    """POST to ``route`` of ``spec``'s deployment: a JSON ``json_body``, or a multipart form of
    ``fields`` ({name: text}) and ``file`` ((field name, file name, bytes, content type)), as
    the SDK sends audio. Returns (content type, body bytes) of a 2xx answer (``timeout``: the
    SDK's default, as a non-streamed answer arrives whole only at its end); retries
    408/409/429/5xx and connection errors as the SDK does; raises only UpstreamError."""
    url = _route_url(spec, route)
    content = None
    if json_body is not None:
        content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
    timeouts = aiohttp.ClientTimeout(total=timeout, sock_connect=client.CONNECT_TIMEOUT)
    session = session or client.stream_session()
    for attempt in range(client.MAX_RETRIES + 1):
        headers = await client.request_headers(spec.target)
        data = content
        if content is None:  # a form is consumed by sending: one per attempt
            headers.pop("content-type", None)  # aiohttp writes the boundary
            data = aiohttp.FormData()
            for name, value in (fields or {}).items():
                data.add_field(name, value)
            if file is not None:
                name, filename, payload, content_type = file
                data.add_field(name, payload, filename=filename, content_type=content_type)
        try:
            response = await client._send(
                session, url, spec, attempt, params=_query(spec), data=data, headers=headers,
                timeout=timeouts, allow_redirects=False, proxy=client._proxy_for(url),
            )
            if response is None:
                await asyncio.sleep(client._backoff(attempt))
                continue
            async with response:
                payload = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise client._broken(spec, f"reading the answer failed ({type(exc).__name__})") from None
        if response.status < 300:
            return response.headers.get("content-type", "application/octet-stream"), payload
        wait = client.retry_wait(response.status, response.headers, attempt)
        if wait is None:
            raise client.map_status(spec, response.status, response.headers, payload)
        await asyncio.sleep(wait)
    raise client._unreachable(spec, "no answer after the retries")
