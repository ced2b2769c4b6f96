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
    [function call] response.output_item.added {item: {type: function_call, call_id, name}}
        response.function_call_arguments.delta..., response.function_call_arguments.done,
        response.output_item.done                       (instead of a message item)
    [message item]  response.output_item.added {item: {type: message}}
        response.content_part.added, response.output_text.delta...,
        response.output_text.done, response.content_part.done, response.output_item.done
    response.completed | response.incomplete | response.failed   (the end; no [DONE])

``error`` events and ``response.failed`` raise UpstreamError as a chat stream's error event
does; ``response.incomplete`` ends with finish reason ``length`` (max_output_tokens) or
``content_filter``. A body that ends before one of the three final events is broken.
"""

import asyncio
from contextlib import aclosing

from apps.azure.client import (
    SAMPLING_PARAMS,
    SIDE_CALL_OWNED,
    SIDE_CALLS,
    Completion,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
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


def _input_items(message):
    """One chat message as Responses input items (text and images, never reasoning). An
    assistant's tool calls become ``function_call`` items and a tool's answer a
    ``function_call_output``: with ``store: false`` Azure remembers nothing, so a tool round's
    follow-up carries both."""
    role = message.get("role", "user")
    content = message.get("content")
    if role == "tool":
        yield {"type": "function_call_output", "call_id": message.get("tool_call_id", ""),
               "output": content if isinstance(content, str) else _text_of(content)}
        return
    if role == "assistant" and message.get("tool_calls"):
        if content:
            yield {"role": "assistant", "content": content if isinstance(content, str) else _text_of(content)}
        for call in message["tool_calls"]:
            function = call.get("function") or {}
            yield {"type": "function_call", "call_id": call.get("id", ""),
                   "name": function.get("name", ""), "arguments": function.get("arguments", "")}
        return
    if isinstance(content, str) or role != "user":
        yield {"role": role, "content": content if isinstance(content, str) else _text_of(content)}
        return
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
    yield {"role": role, "content": parts}


def responses_tools(tools):
    """Chat-completions function tools in the Responses form: flat, not nested under
    ``function`` (Azure refuses the nested form with "Missing required parameter
    'tools[0].name'")."""
    flat = []
    for tool in tools or []:
        function = tool.get("function") or {}
        flat.append({"type": "function", **{k: function[k] for k in ("name", "description", "parameters")
                                             if k in function}})
    return flat


def responses_tool_choice(choice):
    """A chat ``tool_choice`` in the Responses form (``{"type": "function", "name"}``)."""
    if isinstance(choice, dict) and choice.get("function"):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def responses_text_format(response_format):
    """A chat ``response_format`` as the Responses ``text.format``: ``json_schema`` is flat
    there (``name``, ``schema``, ``strict`` beside ``type``), the other types are the same."""
    if not isinstance(response_format, dict):
        return response_format
    if response_format.get("type") == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        return {"type": "json_schema", **response_format["json_schema"]}
    return response_format


def build_responses_body(model, messages, *, params=None, tools=None, tool_choice=None, purpose="chat"):
    """The Responses request body for chat ``messages``: system messages become
    ``instructions``, the rest ``input`` items; the output cap is ``max_output_tokens``;
    reasoning models ask for a summary of answers; chat-form ``tools``/``tool_choice`` are sent
    in the Responses form. ``purpose`` "title" or "summary" keeps the call's own cap and format
    from ``params``, as ``client.merge_params`` does. ``store: false``: Lapis keeps the
    conversation itself, Azure need not."""
    body = {"model": model.deployment}
    system = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    if system:
        body["instructions"] = "\n\n".join(system)
    body["input"] = [item for m in messages if m.get("role") != "system" for item in _input_items(m)]
    added = model.add_params
    if purpose in SIDE_CALLS:
        added = {name: value for name, value in added.items() if name not in SIDE_CALL_OWNED}
    extra = {**(params or {}), **added}
    cap = extra.pop("max_output_tokens", None) or extra.pop("max_completion_tokens", None)
    cap = cap or extra.pop("max_tokens", None) or model.max_output
    extra.pop("max_tokens", None)
    extra.pop("max_completion_tokens", None)
    if cap:
        body["max_output_tokens"] = cap
    if model.reasoning:
        for name in SAMPLING_PARAMS:
            extra.pop(name, None)
        if purpose not in SIDE_CALLS:  # nobody reads a title's reasoning
            body["reasoning"] = {"summary": "auto"}
    if (response_format := extra.pop("response_format", None)) is not None:
        body["text"] = {"format": responses_text_format(response_format)}
    body.update(extra)
    if tools:
        body["tools"] = responses_tools(tools)
        if tool_choice is not None:
            body["tool_choice"] = responses_tool_choice(tool_choice)
    for name in model.drop_params:
        body.pop(name, None)
    body["stream"] = True
    body["store"] = False
    return body


async def stream_responses(
    model, messages, *, params=None, tools=None, tool_choice=None, idle_timeout=60.0, session=None,
):
    """Stream one answer from ``model`` through the Responses API; the events and errors of
    ``client.stream_chat`` (``ToolCall`` included) plus ``ReasoningDelta`` (see the module
    docstring); a pool streams from its members in turn (apps/azure/pools.py)."""
    if model.members:
        from apps.azure.pools import stream_pool

        pooled = stream_pool(model, stream_responses, messages, params=params, tools=tools,
                             tool_choice=tool_choice, idle_timeout=idle_timeout, session=session)
        async with aclosing(pooled):
            async for event in pooled:
                yield event
        return
    body = build_responses_body(model, messages, params=params, tools=tools, tool_choice=tool_choice)
    url = responses_url(model.target)
    query = responses_query(model.api_version)
    events = stream_events(
        model, url, query, body, reader=ResponsesReader(model), idle_timeout=idle_timeout,
        session=session,
    )
    async with aclosing(events):
        async for event in events:
            yield event


async def complete_responses(
    model, messages, *, params=None, tools=None, tool_choice=None, timeout=30.0, purpose="chat",
):
    """One whole answer through the Responses API, as ``client.complete_chat`` returns it (a
    ``Completion``; raises UpstreamError): the stream read to its end within ``timeout``
    seconds, so retries, errors and the content filter are those of a streamed answer."""
    body = build_responses_body(
        model, messages, params=params, tools=tools, tool_choice=tool_choice, purpose=purpose,
    )
    events = stream_events(
        model, responses_url(model.target), responses_query(model.api_version), body,
        reader=ResponsesReader(model), idle_timeout=timeout,
    )
    text, calls, finish, usage = [], [], None, None
    try:
        async with asyncio.timeout(timeout), aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, ToolCall):
                    calls.append(event)
                elif isinstance(event, Finish):
                    finish = event.reason
                elif isinstance(event, Usage):
                    usage = event
    except TimeoutError:
        raise UpstreamError(
            "upstream_stalled", "The model did not answer in time. Try again.",
            admin_detail=_where(model) + f": no complete Responses answer within {timeout:g} s",
        ) from None
    return Completion("".join(text), calls, finish, usage)


class ResponsesReader:
    """Decoded SSE events of a Responses stream → Lapis events (the reader protocol of
    ``client.stream_events``). Events it does not need (item and part bookkeeping, ``.done``
    repeats of text already streamed) are skipped."""

    __slots__ = ("model", "done", "error", "calls")

    def __init__(self, model):
        self.model = model
        self.done = False
        self.error = None
        self.calls = {}  # output_index -> {"id", "name", "arguments"} of function_call items

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
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._function_call(event)
        elif kind == "response.function_call_arguments.delta":
            if (call := self.calls.get(event.get("output_index"))) is not None:
                call["arguments"] += event.get("delta") or ""
        elif kind == "response.function_call_arguments.done":
            if (call := self.calls.get(event.get("output_index"))) is not None:
                call["arguments"] = event.get("arguments") or call["arguments"]
        elif kind == "error":
            raise _stream_error(self.model, {"error": event})
        elif kind in TERMINAL:
            self.done = True
            response = event.get("response") or {}
            if kind == "response.failed":
                error = response.get("error") or {"message": "the response failed"}
                raise _stream_error(self.model, {"error": error})
            usage = _usage(response.get("usage"))
            out.extend(self.pending_calls())
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

    def _function_call(self, event):
        """Track a ``function_call`` output item; its ``call_id`` is what the follow-up's
        ``function_call_output`` names."""
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return
        call = self.calls.setdefault(event.get("output_index"), {"id": "", "name": "", "arguments": ""})
        call["id"] = item.get("call_id") or call["id"]
        call["name"] = item.get("name") or call["name"]
        if item.get("arguments"):
            call["arguments"] = item["arguments"]

    def pending_calls(self):
        calls = [ToolCall(c["id"], c["name"], c["arguments"])
                 for _, c in sorted(self.calls.items(), key=lambda kv: kv[0] or 0)]
        self.calls.clear()
        return calls


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
