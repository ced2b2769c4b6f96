"""Streaming through Azure's Responses API (``POST {endpoint}/openai/v1/responses``).

Models with ``useResponsesApi`` (reasoning, "pro" and codex deployments, some served only
there) stream through here instead of chat/completions. The request goes out, and is retried
before the first byte, exactly like a chat stream (``client.stream_events``); only the body and
the reader differ.

The stream is a series of typed SSE events (``event: <type>`` and a JSON ``data`` whose
``type`` says the same, numbered by ``sequence_number``), in this order::

    response.created, response.in_progress
    [reasoning item] response.output_item.added {item: {type: reasoning}}
        response.reasoning_summary_part.added, response.reasoning_summary_text.delta...,
        response.reasoning_summary_text.done, response.reasoning_summary_part.done
        response.output_item.done
    [message item]  response.output_item.added {item: {type: message}}
        response.content_part.added, response.output_text.delta...,
        response.output_text.done, response.content_part.done, response.output_item.done
    response.completed | response.incomplete | response.failed   (the end; no [DONE])

``error`` events and ``response.failed`` raise UpstreamError as a chat stream's error event
does; ``response.incomplete`` ends with finish reason ``length`` (max_output_tokens) or
``content_filter``. A body that ends before one of the three final events is broken.
"""

from contextlib import aclosing

from apps.azure.client import (
    SAMPLING_PARAMS,
    Finish,
    ReasoningDelta,
    TextDelta,
    Usage,
    _broken,
    _loads,
    _malformed,
    _stream_error,
    _text_of,
    _where,
    cached_of,
    logger,
    stream_events,
)
from apps.azure.errors import UpstreamError

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
# Responses API versions Azure still takes as ``api-version`` on /openai/v1 (the early preview);
# the GA v1 surface takes none, and a dated version there is refused.
V1_QUERY_VERSIONS = ("preview", "latest")


def responses_base(target, base):
    """The ``.../openai/v1`` base for ``base`` (``target``'s URL, or its display form).

    An endpoint (``https://res.openai.azure.com``) gains ``/openai/v1``; a base URL that already
    holds ``/openai`` (a gateway in front of Azure) keeps its path up to there; a serverless
    base already ends in ``/v1``.
    """
    base = base.rstrip("/")
    if target.kind == "openai":
        return base
    scheme, _, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    path = "/" + path if slash else ""
    if "/openai" in path:
        path = path[: path.index("/openai")]
    return f"{scheme}://{host}{path}/openai/v1"


def responses_query(api_version):
    """The query of a Responses request: none on the GA v1 surface, ``api-version=preview``
    only for a model whose version says so."""
    if api_version in V1_QUERY_VERSIONS:
        return {"api-version": api_version}
    return None


def responses_url(target):
    return responses_base(target, target.base_url.reveal()) + "/responses"


def _input_item(message):
    """One chat message as a Responses input item (its text and images; never reasoning)."""
    role = message.get("role", "user")
    content = message.get("content")
    if isinstance(content, str) or role != "user":
        text = content if isinstance(content, str) else _text_of(content)
        return {"role": role, "content": text}
    parts = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            parts.append({"type": "input_image", "image_url": image.get("url", ""),
                          "detail": image.get("detail", "auto")})
    return {"role": role, "content": parts}


def build_responses_body(model, messages, *, params=None):
    """The Responses request body for chat ``messages``: system messages become
    ``instructions``, the rest ``input`` items; the output cap is ``max_output_tokens``;
    reasoning models ask for a summary. ``store: false``: Lapis keeps the conversation itself,
    Azure need not."""
    body = {"model": model.deployment}
    system = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    if system:
        body["instructions"] = "\n\n".join(system)
    body["input"] = [_input_item(m) for m in messages if m.get("role") != "system"]
    extra = {**(params or {}), **model.add_params}
    cap = extra.pop("max_output_tokens", None) or extra.pop("max_completion_tokens", None)
    cap = cap or extra.pop("max_tokens", None) or model.max_output
    extra.pop("max_tokens", None)
    extra.pop("max_completion_tokens", None)
    if cap:
        body["max_output_tokens"] = cap
    if model.reasoning:
        for name in SAMPLING_PARAMS:
            extra.pop(name, None)
        body["reasoning"] = {"summary": "auto"}
    body.update(extra)
    for name in model.drop_params:
        body.pop(name, None)
    body["stream"] = True
    body["store"] = False
    return body


async def stream_responses(model, messages, *, params=None, idle_timeout=60.0, session=None):
    """Stream one answer from ``model`` through the Responses API; the events and errors of
    ``client.stream_chat`` plus ``ReasoningDelta`` (see the module docstring)."""
    body = build_responses_body(model, messages, params=params)
    url = responses_url(model.target)
    query = responses_query(model.api_version)
    events = stream_events(
        model, url, query, body, reader=ResponsesReader(model), idle_timeout=idle_timeout,
        session=session,
    )
    async with aclosing(events):
        async for event in events:
            yield event


class ResponsesReader:
    """Decoded SSE events of a Responses stream → Lapis events (the reader protocol of
    ``client.stream_events``). Events it does not need (item and part bookkeeping, ``.done``
    repeats of text already streamed) are skipped."""

    __slots__ = ("model", "done", "error")

    def __init__(self, model):
        self.model = model
        self.done = False
        self.error = None

    def read(self, events):
        out = []
        try:
            for kind, data in events:
                self._event(kind, data, out)
                if self.done:
                    break
        except UpstreamError as exc:
            self.error = exc
        return out

    def _event(self, kind, data, out):
        event = _loads(data, self.model)
        if not isinstance(event, dict):
            raise _malformed(self.model, "a data event that is not an object")
        kind = event.get("type") or kind
        if kind == "response.output_text.delta":
            if event.get("delta"):
                out.append(TextDelta(event["delta"]))
        elif kind == "response.reasoning_summary_text.delta":
            if event.get("delta"):
                out.append(ReasoningDelta(event["delta"]))
        elif kind == "response.reasoning_summary_part.added" and event.get("summary_index"):
            out.append(ReasoningDelta("\n\n"))  # summary parts are paragraphs
        elif kind == "error":
            raise _stream_error(self.model, {"error": event})
        elif kind in TERMINAL:
            self.done = True
            response = event.get("response") or {}
            if kind == "response.failed":
                error = response.get("error") or {"message": "the response failed"}
                raise _stream_error(self.model, {"error": error})
            usage = _usage(response.get("usage"))
            if kind == "response.incomplete":
                reason = (response.get("incomplete_details") or {}).get("reason")
                out.append(Finish("content_filter" if reason == "content_filter" else "length"))
            else:
                out.append(Finish("stop"))
            if usage is not None:
                out.append(usage)
        else:
            logger.debug("skipping Responses event %r from %s", kind, _where(self.model))

    def unfinished(self):
        return _broken(self.model, "the Responses stream ended before response.completed")

    def pending_calls(self):
        return []


def _usage(usage):
    """Azure's Responses usage (input/output tokens, reasoning tokens inside the output)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=usage.get("input_tokens") or 0,
        completion_tokens=usage.get("output_tokens") or 0,
        reasoning_tokens=details.get("reasoning_tokens") or 0,
        cached_tokens=cached_of(usage.get("input_tokens_details")),
    )
