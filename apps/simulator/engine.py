"""What a request gets: the reply plan (text or tool call), streamed or whole, in Azure's shapes.

``ReplyRequest.from_body`` reads a chat or completions body; ``plan_reply`` decides the answer
(deterministic for a given request); ``stream_reply`` writes Azure's SSE stream with the
stream-level faults; ``full_response`` builds the non-streaming body.
"""

import base64
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field

from . import images, wire
from .language import (
    default_answer,
    filler,
    find,
    markdown_answer,
    parse_markers,
    short_title,
    strip_markers,
)

__all__ = ["find", "parse_markers", "strip_markers"]
_PIECES = re.compile(r"\s*\S+|\s+$")
_STRIPPED_PARAMS = ("messages", "prompt", "stream", "stream_options")


def _text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


@dataclass
class ReplyRequest:
    kind: str  # "chat" or "completion"
    deployment: object
    body: dict
    messages: list = field(default_factory=list)
    prompt: str = ""
    text: str = ""  # where markers are read: the last user message, or the prompt
    markers: list = field(default_factory=list)
    problem: tuple | None = None  # (param, message) for a 400

    @classmethod
    def from_body(cls, body, *, kind, deployment):
        request = cls(kind=kind, deployment=deployment, body=body)
        if kind == "completion":
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                prompt = "\n".join(str(p) for p in prompt)
            if not isinstance(prompt, str):
                request.problem = ("prompt", "'prompt' is a required property")
                return request
            request.prompt = request.text = prompt
        else:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                request.problem = ("messages", "'messages' is a required property")
                return request
            for index, message in enumerate(messages):
                if not isinstance(message, dict) or "role" not in message:
                    request.problem = (f"messages[{index}]", f"messages[{index}] needs a 'role'.")
                    return request
            request.messages = messages
            users = [m for m in messages if m.get("role") == "user"]
            request.text = _text_of(users[-1].get("content")) if users else ""
        request.markers = parse_markers(request.text)
        return request

    def prompt_tokens(self, count_messages, count_text):
        if self.kind == "completion":
            return count_text(self.prompt, self.deployment.model)
        return count_messages(self.messages, self.deployment.model)

    def tools(self):
        return [t for t in self.body.get("tools") or [] if isinstance(t, dict) and t.get("function")]


@dataclass
class Plan:
    text: str = ""
    tool_name: str | None = None
    tool_args: str = ""
    finish_reason: str = "stop"
    pieces: list = field(default_factory=list)  # content chunks (batches of tokens)


def _seed(text):
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _batches(text):
    """Split ``text`` into content chunks of 1 to 8 tokens, sizes varying deterministically."""
    pieces = _PIECES.findall(text)
    seed, out, i, turn = _seed(text), [], 0, 0
    while i < len(pieces):
        size = 1 + ((seed >> ((turn * 3) % 61)) & 7)
        out.append("".join(pieces[i : i + size]))
        i += size
        turn += 1
    return out


def _report(request, prompt_tokens):
    messages = request.messages
    system = next((m for m in messages if m.get("role") == "system"), None)
    details = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    details.append((part.get("image_url") or {}).get("detail", "auto"))
    params = {k: v for k, v in request.body.items() if k not in _STRIPPED_PARAMS}
    report = {
        "messages": len(messages),
        "roles": [m.get("role") for m in messages],
        "system": " ".join(_text_of(system.get("content")).split()[:8]) if system else None,
        "images": len(details),
        "details": details,
        "params": params,
        "prompt_tokens": prompt_tokens,
        "tools": [t["function"].get("name") for t in request.tools()],
        "deployment": request.deployment.name,
    }
    return "REPORT " + json.dumps(report, sort_keys=True, ensure_ascii=False)


def _first_user_text(request):
    for message in request.messages:
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return request.text


def _default_args(request, function):
    """Deterministic arguments for ``function`` from its JSON-schema parameters."""
    properties = ((function.get("parameters") or {}).get("properties")) or {}
    args = {}
    for name, schema in properties.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if name == "title":
            args[name] = short_title(_first_user_text(request))
        elif isinstance(schema, dict) and schema.get("enum"):
            args[name] = schema["enum"][0]
        elif kind in ("integer", "number"):
            args[name] = 1
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = strip_markers(request.text) or "simulated"
    return json.dumps(args)


def _tool_choice(request):
    """The function the request forces or asks for with a marker: (function, args) or None."""
    tools = {t["function"].get("name"): t["function"] for t in request.tools()}
    if not tools or request.kind != "chat":
        return None
    choice = request.body.get("tool_choice")
    marker = find(request.markers, "tool")
    forced = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
    elif choice == "required":
        forced = marker.args.get("name") if marker and marker.args.get("name") in tools else next(iter(tools))
    if forced in tools:
        if marker and marker.args.get("name") == forced and "args" in marker.args:
            return forced, _json_args(marker.args["args"])
        return forced, _default_args(request, tools[forced])
    if marker and choice != "none":
        name = marker.args.get("name") or next(iter(tools))
        if "args" in marker.args:
            return name, _json_args(marker.args["args"])
        return name, _default_args(request, tools.get(name, {}))
    return None


def _json_args(value):
    return value if isinstance(value, str) else json.dumps(value)


def _answer_text(request, prompt_tokens):
    markers = request.markers
    if find(markers, "echo"):
        return strip_markers(request.text)
    if find(markers, "report"):
        return _report(request, prompt_tokens)
    if marker := find(markers, "words"):
        n = marker.int_arg("n") or request.deployment.tokens
        return filler(n, _seed(request.text))
    if find(markers, "markdown"):
        return markdown_answer(request.text)
    return default_answer(strip_markers(request.text), request.deployment.tokens)


def plan_reply(request, *, prompt_tokens):
    chosen = _tool_choice(request)
    if chosen:
        name, args = chosen
        return Plan(tool_name=name, tool_args=args, finish_reason="tool_calls")
    text = _answer_text(request, prompt_tokens)
    plan = Plan(text=text, pieces=_batches(text))
    limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
    # A report is a diagnostic for tests: it is never cut, or its JSON would not parse.
    if isinstance(limit, int) and limit > 0 and not find(request.markers, "report"):
        kept, tokens = [], 0
        for piece in plan.pieces:
            tokens += len(_PIECES.findall(piece))
            if tokens > limit:
                plan.finish_reason = "length"
                break
            kept.append(piece)
        plan.pieces = kept
        plan.text = "".join(kept)
    return plan


def delays(request):
    """(ttft seconds, seconds between chunks) from the deployment and a [sim:delay] marker."""
    ttft, chunk = request.deployment.ttft_ms, request.deployment.chunk_ms
    if marker := find(request.markers, "delay"):
        ttft = marker.float_arg("ttft", ttft)
        chunk = marker.float_arg("chunk", chunk)
    return ttft / 1000, chunk / 1000


def _maker(request, *, azure, include_usage):
    from .app import fingerprint

    completion = request.kind == "completion"
    return wire.ChunkMaker(
        id=("cmpl-" if completion else "chatcmpl-") + uuid.uuid4().hex[:24],
        model=request.deployment.model,
        created=int(time.time()),
        fingerprint=fingerprint(request.deployment.model),
        object="text_completion" if completion else "chat.completion.chunk",
        usage_key=include_usage,
        azure=azure,
    )


def _faults_due(stops, index, total):
    """The fault markers that act before content chunk ``index`` of ``total`` (a fault's
    ``after`` beyond a shorter text acts at its end), in marker order."""
    return [
        (name, marker)
        for name, marker in stops.items()
        if marker is not None and index == min(marker.int_arg("after") or 0, total)
    ]


async def _transport_fault(ex, name):
    """Run a fault of the connection itself, the same for every stream shape: ``stall`` holds
    the response open until the client goes, ``drop`` returns mid-response (the server then
    closes the connection). True when the response is over."""
    if name == "stall":
        await ex.disconnected.wait()
        return True
    if name == "drop":
        ex.entry["outcome"] = "error"
        return True
    return False


async def stream_reply(ex, request, plan, *, headers, azure, include_usage, prompt_tokens,
                       completion_tokens):
    """Write the SSE stream; stream-level faults come from the markers."""
    ttft, gap = delays(request)
    ex.watch_disconnect()
    if not await ex.pause(ttft):
        return
    maker = _maker(request, azure=azure, include_usage=include_usage)
    markers = request.markers
    stops = {name: find(markers, name) for name in ("stall", "drop", "error_event", "malformed",
                                                    "cut", "filter_answer")}
    shape = find(markers, "shape")
    shape = shape.args if shape else {}
    foreign = find(markers, "foreign_event")
    filter_error = bool(find(markers, "filter_error"))
    async_filter = bool(find(markers, "async_filter")) or request.deployment.async_filter
    await ex.start(200, [("content-type", "text/event-stream; charset=utf-8"),
                         ("cache-control", "no-cache"), *headers])
    if azure:
        await ex.write(wire.sse(maker.annotation()))
    if request.kind == "chat":
        await ex.write(wire.sse(maker.role()))
    sent, offset, finish, finish_filter = [], 0, plan.finish_reason, None
    chunks = plan.pieces
    if plan.tool_name:
        chunks = [plan.tool_args[i : i + 12] for i in range(0, len(plan.tool_args), 12)] or [""]
        await ex.write(wire.sse(maker.tool_call_start("call_" + uuid.uuid4().hex[:24], plan.tool_name)))
    for index in range(len(chunks) + 1):
        for name, marker in _faults_due(stops, index, len(chunks)):
            if await _transport_fault(ex, name):
                return
            if name == "error_event":
                ex.entry["outcome"] = "error"
                await ex.end(wire.sse(wire.error_body(
                    "server_error", "The server had an error processing your request.",
                    param=None, type_="server_error")))
                return
            if name == "malformed":
                ex.entry["outcome"] = "error"
                await ex.end(b'data: {"choices":[{"delta":{"content":"bro\n\n')
                return
            if name == "cut":  # the body ends cleanly, but in the middle of a chunk
                ex.entry["outcome"] = "error"
                await ex.end(b'data: {"choices":[{"delta":{"content":"bro')
                return
            if name == "filter_answer":
                finish = "content_filter"
                finish_filter = wire.severity_results(
                    category=marker.args.get("category", "violence"),
                    severity=marker.args.get("severity", "medium"), filtered=True)
        if finish == "content_filter" or index == len(chunks):
            break
        if index and not await ex.pause(gap):
            return
        if ex.disconnected.is_set():
            return
        piece = chunks[index]
        if foreign and index == min(foreign.int_arg("after") or 0, len(chunks)):
            # An event of another type (issue 13): a reader must not show its data as text.
            await ex.write(b"event: foo\n" + wire.sse(maker.content("FOREIGN-EVENT-TEXT")))
        if plan.tool_name:
            await ex.write(wire.sse(maker.tool_call_args(piece)))
        elif filter_error:
            await ex.write(wire.sse(maker.content(piece, filter_results=wire.filter_error())))
        else:
            await ex.write(wire.sse(maker.content(piece)))
        sent.append(piece)
        if async_filter and azure and len(sent) % 2 == 0:
            end = offset + sum(len(p) for p in sent[-2:])
            await ex.write(wire.sse(maker.async_annotation(offset, end)))
            offset = end
    # Stream shapes other servers and gateways send ([sim:shape finish=... done=...]):
    # finish=delta puts finish_reason inside the delta, finish=none leaves it out;
    # done=bare ends with "[DONE]" without "data: ", done=none ends the body without it.
    where = shape.get("finish", "choice")
    if where != "none":
        await ex.write(wire.sse(maker.finish(finish, finish_filter, in_delta=where == "delta")))
    text = "".join(sent)
    if async_filter and azure:
        await ex.write(wire.sse(maker.async_annotation(offset, len(text))))
    if include_usage:
        used = completion_tokens(plan.tool_args if plan.tool_name else text)
        await ex.write(wire.sse(maker.usage_chunk(prompt_tokens, used)))
    done = shape.get("done", "data")
    await ex.end(b"[DONE]\n\n" if done == "bare" else b"" if done == "none" else wire.DONE)


def full_response(request, plan, *, azure, prompt_tokens, completion_tokens):
    from .app import fingerprint

    text, finish, filters = plan.text, plan.finish_reason, wire.severity_results()
    if marker := find(request.markers, "filter_answer"):
        text = "".join(plan.pieces[: marker.int_arg("after") or 0])
        finish = "content_filter"
        filters = wire.severity_results(category=marker.args.get("category", "violence"),
                                        severity=marker.args.get("severity", "medium"), filtered=True)
    completion = request.kind == "completion"
    choice = {"index": 0, "finish_reason": finish, "logprobs": None}
    if completion:
        choice["text"] = text
    else:
        message = {"role": "assistant", "content": text, "refusal": None}
        if plan.tool_name:
            message["content"] = None
            message["tool_calls"] = [{
                "id": "call_" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {"name": plan.tool_name, "arguments": plan.tool_args},
            }]
        choice["message"] = message
    if azure:
        choice["content_filter_results"] = filters
    data = {
        "id": ("cmpl-" if completion else "chatcmpl-") + uuid.uuid4().hex[:24],
        "object": "text_completion" if completion else "chat.completion",
        "created": int(time.time()),
        "model": request.deployment.model,
        "system_fingerprint": fingerprint(request.deployment.model),
        "choices": [choice],
        "usage": wire.usage(prompt_tokens, completion_tokens),
    }
    if azure:
        data["prompt_filter_results"] = wire.prompt_filter_results()
    choice = wire.ordered(choice)
    if "message" in choice:
        choice["message"] = wire.ordered(choice["message"])
    data["choices"] = [choice]
    return wire.ordered(data)


# ----------------------------------------------------------------- images

def check_dalle3(body):
    """(param, message, code) for a DALL-E 3 request Azure would refuse, or None."""
    if len(body["prompt"]) > 4000:
        return ("prompt", "The prompt must be 4000 characters or fewer.", "invalid_request_error")
    if body.get("n", 1) != 1:
        return ("n", "You must provide n=1 for this model.", "invalid_request_error")
    if (body.get("size") or "1024x1024") not in images.DALLE3_SIZES:
        return ("size", f"The size is not supported by this model. Supported sizes: "
                f"{', '.join(images.DALLE3_SIZES)}.", "invalid_size")
    if (body.get("quality") or "standard") not in ("standard", "hd"):
        return ("quality", "quality must be 'standard' or 'hd'.", "invalid_request_error")
    if (body.get("style") or "vivid") not in ("vivid", "natural"):
        return ("style", "style must be 'vivid' or 'natural'.", "invalid_request_error")
    if (body.get("response_format") or "url") not in ("url", "b64_json"):
        return ("response_format", "response_format must be 'url' or 'b64_json'.",
                "invalid_request_error")
    return None


def check_gpt_image(body):
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        return ("n", "n must be between 1 and 10.", "invalid_request_error")
    if (body.get("size") or "1024x1024") not in images.GPT_IMAGE_SIZES:
        return ("size", f"Invalid size. Supported sizes: {', '.join(images.GPT_IMAGE_SIZES)}.",
                "invalid_size")
    if (body.get("quality") or "auto") not in ("low", "medium", "high", "auto"):
        return ("quality", "quality must be one of low, medium, high, auto.", "invalid_request_error")
    if body.get("response_format") not in (None, "b64_json"):
        return ("response_format", "response_format is not supported for this model; images are "
                "always returned as b64_json.", "invalid_request_error")
    return None


def check_dalle2(body):
    if len(body["prompt"]) > 1000:
        return ("prompt", "The prompt must be 1000 characters or fewer.", "invalid_request_error")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        return ("n", "n must be between 1 and 10.", "invalid_request_error")
    if (body.get("size") or "1024x1024") not in images.DALLE2_SIZES:
        return ("size", f"Supported sizes: {', '.join(images.DALLE2_SIZES)}.", "invalid_size")
    return None


def image_block(prompt, markers):
    """(category, severity) when the image prompt is blocked by the content policy, else None."""
    if marker := find(markers, "filter_prompt"):
        return marker.args.get("category", "violence"), marker.args.get("severity", "high")
    if "forbidden" in strip_markers(prompt).lower():
        return "violence", "high"
    return None


def revised_prompt(prompt):
    return f"{prompt.rstrip('. ')}, rendered as a clean digital illustration with soft, even light."


def b64_png(prompt, size):
    return base64.b64encode(images.render_png(prompt, size)).decode()


# ----------------------------------------------------------------- Responses API

SUMMARY_MODES = ("auto", "concise", "detailed")


def _responses_part(part):
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        return {"type": "image_url",
                "image_url": {"url": part.get("image_url", ""), "detail": part.get("detail", "auto")}}
    return None


def _responses_item(item, index, calls):
    """One Responses input item as a chat message, or (param, problem). A ``function_call``
    becomes an assistant tool call, a ``function_call_output`` the tool's answer; with
    ``store: false`` nothing is remembered, so an output must follow its call in this input."""
    if not isinstance(item, dict):
        return None, (f"input[{index}]", f"input[{index}] must be an object.")
    kind = item.get("type", "message")
    if kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return None, (f"input[{index}]", f"input[{index}] needs a 'call_id' and a 'name'.")
        calls.add(call_id)
        call = {"id": call_id, "type": "function",
                "function": {"name": name, "arguments": str(item.get("arguments", ""))}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, None
    if kind == "function_call_output":
        call_id = item.get("call_id")
        if call_id not in calls:
            return None, (f"input[{index}]",
                          f"No tool call found for function call output with call_id {call_id}.")
        return {"role": "tool", "tool_call_id": call_id, "content": str(item.get("output", ""))}, None
    if kind != "message" or "role" not in item:
        return None, (f"input[{index}]", f"input[{index}] must be a message with a 'role'.")
    content = item.get("content")
    if isinstance(content, list):
        content = [p for p in (_responses_part(part) for part in content) if p]
    return {"role": item["role"], "content": content}, None


def responses_messages(body):
    """The chat messages of a Responses body (``instructions`` + ``input``), or (param, problem)."""
    messages = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        return None, ("input", "'input' is a required property")
    calls = set()
    for index, item in enumerate(items):
        message, problem = _responses_item(item, index, calls)
        if problem:
            return None, problem
        messages.append(message)
    return messages, None


def responses_tools(body):
    """A Responses body's function tools in chat form, or (None, (param, problem)). Responses
    tools are flat (``{"type": "function", "name", "parameters"}``); the chat form nested under
    ``function`` is refused, as Azure refuses it."""
    tools = body.get("tools")
    if tools is None:
        return [], None
    if not isinstance(tools, list):
        return None, ("tools", "'tools' must be an array.")
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue  # built-in tools (web_search, ...) are not simulated
        if not isinstance(tool.get("name"), str):
            return None, (f"tools[{index}].name", f"Missing required parameter: 'tools[{index}].name'.")
        function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        converted.append({"type": "function", "function": function})
    return converted, None


def _chat_tool_choice(choice):
    """A Responses ``tool_choice`` in chat form (``{"type": "function", "name"}`` is flat)."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


# Chat parameters the Responses API refuses by name, with where they went.
MOVED_IN_RESPONSES = {"response_format": "text.format", "max_tokens": "max_output_tokens",
                      "max_completion_tokens": "max_output_tokens", "messages": "input"}


def responses_request(body, *, deployment):
    """A ReplyRequest for a Responses body: its messages as chat messages, its tools and output
    cap in chat form (so plans and reports work as for chat)."""
    for name, moved in MOVED_IN_RESPONSES.items():
        if name in body:
            request = ReplyRequest(kind="chat", deployment=deployment, body=body)
            request.problem = (name, f"Unsupported parameter: '{name}'. In the Responses API, this "
                               f"parameter has moved to '{moved}'. Try again with the new parameter.")
            return request
    messages, problem = responses_messages(body)
    tools, tools_problem = responses_tools(body)
    if problem or tools_problem:
        request = ReplyRequest(kind="chat", deployment=deployment, body=body)
        request.problem = problem or tools_problem
        return request
    chat_body = {k: v for k, v in body.items() if k not in ("input", "instructions", "tools", "tool_choice")}
    chat_body["messages"] = messages
    if tools:
        chat_body["tools"] = tools
    if "tool_choice" in body:
        chat_body["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    if body.get("max_output_tokens"):
        chat_body["max_completion_tokens"] = body["max_output_tokens"]
    return ReplyRequest.from_body(chat_body, kind="chat", deployment=deployment)


def reasoning_summary(request):
    """The deterministic reasoning summary of a reasoning deployment asked for one, or ""."""
    mode = ((request.body.get("reasoning") or {}).get("summary"))
    if not request.deployment.reasoning or mode not in SUMMARY_MODES:
        return ""
    topic = " ".join(strip_markers(request.text).split()[:6]) or "the question"
    return (f"**Reading the question**\n\nThe user asks about \u201c{topic}\u201d. "
            "I will answer plainly and keep it short.")


def reasoning_tokens(request, summary, count):
    """Reasoning tokens a reasoning deployment spends (billed as output): deterministic."""
    if not request.deployment.reasoning:
        return 0
    return 64 + 3 * count(summary)


def _responses_maker(request, body):
    return wire.ResponsesEvents(
        id="resp_" + uuid.uuid4().hex, model=request.deployment.model, created=int(time.time()),
        request=body,
    )


async def stream_responses_reply(ex, request, plan, *, body, headers, prompt_tokens, count):
    """Write a Responses stream in Azure's event order (see apps/azure/responses.py); the
    stream faults stall, drop, error_event, cut, failed and filter_answer act before text
    delta number ``after``."""
    ttft, gap = delays(request)
    ex.watch_disconnect()
    if not await ex.pause(ttft):
        return
    events = _responses_maker(request, body)
    markers = request.markers
    stops = {name: find(markers, name) for name in ("stall", "drop", "error_event", "cut", "failed",
                                                    "filter_answer")}
    await ex.start(200, [("content-type", "text/event-stream; charset=utf-8"),
                         ("cache-control", "no-cache"), *headers])

    async def send(type_, **fields):
        await ex.write(wire.typed_sse(events.event(type_, **fields)))

    await send("response.created", response=events.response("in_progress"))
    await send("response.in_progress", response=events.response("in_progress"))
    output, summary = [], reasoning_summary(request)
    if request.deployment.reasoning:
        item_id = "rs_" + uuid.uuid4().hex
        reasoning = {"id": item_id, "type": "reasoning", "summary": []}
        await send("response.output_item.added", output_index=0, item=reasoning)
        if summary:
            part = {"type": "summary_text", "text": ""}
            await send("response.reasoning_summary_part.added", item_id=item_id, output_index=0,
                       summary_index=0, part=part)
            for index, piece in enumerate(_batches(summary)):
                if index and not await ex.pause(gap):
                    return
                await send("response.reasoning_summary_text.delta", item_id=item_id,
                           output_index=0, summary_index=0, delta=piece)
            await send("response.reasoning_summary_text.done", item_id=item_id, output_index=0,
                       summary_index=0, text=summary)
            await send("response.reasoning_summary_part.done", item_id=item_id, output_index=0,
                       summary_index=0, part={"type": "summary_text", "text": summary})
            reasoning = {**reasoning, "summary": [{"type": "summary_text", "text": summary}]}
        await send("response.output_item.done", output_index=0, item=reasoning)
        output.append(reasoning)
    index_out = len(output)
    if plan.tool_name:
        call = await _stream_function_call(ex, send, plan, index_out, gap)
        if call is None:
            return
        output.append(call)
        thinking = reasoning_tokens(request, summary, count)
        usage = wire.responses_usage(prompt_tokens, count(plan.tool_args) + thinking, thinking)
        await ex.end(wire.typed_sse(events.event(
            "response.completed", response=events.response("completed", output=output, usage=usage))))
        return
    message_id = "msg_" + uuid.uuid4().hex
    message = {"id": message_id, "type": "message", "status": "in_progress", "content": [],
               "role": "assistant"}
    await send("response.output_item.added", output_index=index_out, item=message)
    where = {"item_id": message_id, "output_index": index_out, "content_index": 0}
    await send("response.content_part.added", **where,
               part={"type": "output_text", "annotations": [], "text": ""})
    sent, filtered = [], False
    chunks = plan.pieces
    for index in range(len(chunks) + 1):
        for name, _marker in _faults_due(stops, index, len(chunks)):
            if await _transport_fault(ex, name):
                return
            if name == "error_event":
                ex.entry["outcome"] = "error"
                await ex.end(wire.typed_sse(events.event(
                    "error", code="server_error", message="The server had an error processing your request.",
                    param=None)))
                return
            if name == "cut":
                ex.entry["outcome"] = "error"
                await ex.end(b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"bro')
                return
            if name == "failed":
                ex.entry["outcome"] = "error"
                error = {"code": "server_error", "message": "The model failed to produce a response."}
                await ex.end(wire.typed_sse(events.event(
                    "response.failed", response=events.response("failed", output=output, error=error))))
                return
            if name == "filter_answer":
                filtered = True
        if filtered or index == len(chunks):
            break
        if index and not await ex.pause(gap):
            return
        if ex.disconnected.is_set():
            return
        await send("response.output_text.delta", **where, delta=chunks[index], logprobs=[])
        sent.append(chunks[index])
    text = "".join(sent)
    part = {"type": "output_text", "annotations": [], "text": text}
    await send("response.output_text.done", **where, text=text, logprobs=[])
    await send("response.content_part.done", **where, part=part)
    incomplete = filtered or plan.finish_reason == "length"
    message = {**message, "status": "incomplete" if incomplete else "completed", "content": [part]}
    await send("response.output_item.done", output_index=index_out, item=message)
    output.append(message)
    thinking = reasoning_tokens(request, summary, count)
    usage = wire.responses_usage(prompt_tokens, count(text) + thinking, thinking)
    if incomplete:
        reason = {"reason": "content_filter" if filtered else "max_output_tokens"}
        final = events.event("response.incomplete", response=events.response(
            "incomplete", output=output, usage=usage, incomplete=reason))
    else:
        final = events.event("response.completed",
                             response=events.response("completed", output=output, usage=usage))
    await ex.end(wire.typed_sse(final))


def _function_call_item(plan, *, status, arguments):
    return {"id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": status,
            "arguments": arguments, "call_id": "call_" + uuid.uuid4().hex[:24], "name": plan.tool_name}


async def _stream_function_call(ex, send, plan, index_out, gap):
    """Stream the plan's function call as a Responses output item (added, argument deltas,
    done); the finished item, or None when the client went away."""
    item = _function_call_item(plan, status="in_progress", arguments="")
    await send("response.output_item.added", output_index=index_out, item=item)
    where = {"item_id": item["id"], "output_index": index_out}
    pieces = [plan.tool_args[i : i + 12] for i in range(0, len(plan.tool_args), 12)]
    for index, piece in enumerate(pieces):
        if index and not await ex.pause(gap):
            return None
        await send("response.function_call_arguments.delta", **where, delta=piece)
    await send("response.function_call_arguments.done", **where, arguments=plan.tool_args)
    item = {**item, "status": "completed", "arguments": plan.tool_args}
    await send("response.output_item.done", output_index=index_out, item=item)
    return item


def full_responses_body(request, plan, *, body, prompt_tokens, count):
    """The non-streamed Responses object (``stream`` false)."""
    events = _responses_maker(request, body)
    summary = reasoning_summary(request)
    output = []
    if request.deployment.reasoning:
        output.append({"id": "rs_" + uuid.uuid4().hex, "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": summary}] if summary else []})
    thinking = reasoning_tokens(request, summary, count)
    if plan.tool_name:
        output.append(_function_call_item(plan, status="completed", arguments=plan.tool_args))
        usage = wire.responses_usage(prompt_tokens, count(plan.tool_args) + thinking, thinking)
        return events.response("completed", output=output, usage=usage)
    part = {"type": "output_text", "annotations": [], "text": plan.text}
    incomplete = plan.finish_reason == "length"
    output.append({"id": "msg_" + uuid.uuid4().hex, "type": "message",
                   "status": "incomplete" if incomplete else "completed", "content": [part],
                   "role": "assistant"})
    usage = wire.responses_usage(prompt_tokens, count(plan.text) + thinking, thinking)
    return events.response("incomplete" if incomplete else "completed", output=output, usage=usage,
                           incomplete={"reason": "max_output_tokens"} if incomplete else None)
