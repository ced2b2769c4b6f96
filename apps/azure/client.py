"""Azure OpenAI clients and request building: the only module (with images.py) that imports openai.

One SDK client per distinct target (URL, api-version, auth, key, headers) and event loop, built
once and reused for the life of the process (see ``aclose_clients`` on shutdown). Normal groups use
``AsyncAzureOpenAI`` (the deployment goes in the URL through ``model=``); serverless groups use
``AsyncOpenAI`` against the ``baseURL`` root with the key as bearer token and as ``api-key``.

``stream_chat`` yields ``TextDelta``/``ToolCall``/``Finish``/``Usage`` events and raises only
``UpstreamError``. The SDK retries before the first byte (honouring ``retry-after``); nothing is
retried once the stream has started. Leaving the iteration early (a cancelled task, a ``break``)
closes the HTTP response, so the upstream sees the disconnect.
"""

import asyncio
import logging
import re
from dataclasses import dataclass, field

import httpx2
import openai

from apps.azure.errors import UpstreamError

logger = logging.getLogger("lapis.azure")
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
CONNECT_TIMEOUT = 10.0
SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)
DEFAULT_PARAMS = {}
VERSION_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Finish:
    reason: str | None
    filter_results: dict | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Completion:
    text: str
    tool_calls: list = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None


# ---- clients --------------------------------------------------------------------------------

_clients = {}
_credentials = {}


def _target_key(target):
    headers = tuple((name, value.reveal()) for name, value in target.headers)
    key = target.api_key.reveal() if target.api_key else None
    return (target.kind, target.base_url.reveal(), target.uses_endpoint, target.api_version,
            target.auth_mode, key, headers)


def _entra_token_provider():
    from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

    loop = asyncio.get_running_loop()
    credential = _credentials.get(loop)
    if credential is None:
        credential = _credentials[loop] = DefaultAzureCredential()
    return get_bearer_token_provider(credential, ENTRA_SCOPE)


# The SDK retries a 429 or 503 after the wait the service asks for, up to two minutes per
# attempt, while the user sees nothing. Lapis retries only short waits; a longer one is reported
# at once with when to try again.
MAX_RETRY_WAIT = 10.0


class _ShortWaitsOnly:
    """Mixed into the SDK clients: no retry when ``retry-after`` exceeds MAX_RETRY_WAIT."""

    def _should_retry(self, response):
        retry_after = self._parse_retry_after_header(response.headers)
        if retry_after is not None and retry_after > MAX_RETRY_WAIT:
            return False
        return super()._should_retry(response)


class AzureClient(_ShortWaitsOnly, openai.AsyncAzureOpenAI):
    pass


class OpenAIClient(_ShortWaitsOnly, openai.AsyncOpenAI):
    pass


def client_for(spec, *, http_client=None):
    """The SDK client for ``spec``'s target: cached per target and event loop.

    With ``http_client`` (an ``httpx2.AsyncClient``) a new, uncached client is built on it; tests
    use this to route requests for ``https://{instance}.openai.azure.com`` to a local server.
    """
    target = spec.target
    loop = asyncio.get_running_loop()
    cache_key = (_target_key(target), loop)
    if http_client is None and cache_key in _clients:
        return _clients[cache_key]
    headers = {name: value.reveal() for name, value in target.headers}
    options = {"default_headers": headers, "http_client": http_client, "max_retries": 2}
    if target.kind == "openai":
        if target.auth_mode == "entra":
            api_key = _entra_token_provider()
        else:
            api_key = target.api_key.reveal()
            headers["api-key"] = api_key
        query = {"api-version": target.api_version} if target.api_version else None
        client = OpenAIClient(
            base_url=target.base_url.reveal(), api_key=api_key, default_query=query, **options
        )
    else:
        auth = (
            {"azure_ad_token_provider": _entra_token_provider()}
            if target.auth_mode == "entra"
            else {"api_key": target.api_key.reveal()}
        )
        where = (
            {"azure_endpoint": target.base_url.reveal()}
            if target.uses_endpoint
            else {"base_url": target.base_url.reveal()}
        )
        client = AzureClient(api_version=target.api_version, **where, **auth, **options)
    if http_client is None:
        _clients[cache_key] = client
    return client


async def aclose_clients():
    """Close every cached client and Entra credential (tests call it between event loops).

    Server processes never call it, on purpose: Daphne speaks no ASGI lifespan, and a hook into
    Twisted's shutdown would be fragile. Nothing is lost: closing only drops idle keep-alive
    sockets (the OS does the same at exit; HTTP/1.1 has no goodbye), answers in flight are
    cancelled by Daphne anyway, and the credential holds only an in-memory token cache.
    """
    clients = list(_clients.values())
    _clients.clear()
    credentials = list(_credentials.values())
    _credentials.clear()
    for client in clients:
        try:
            await client.close()
        except Exception:  # closing is best effort; one failure must not keep others open
            logger.warning("closing an Azure client failed", exc_info=True)
    for credential in credentials:
        try:
            await credential.close()
        except Exception:
            logger.warning("closing the Entra credential failed", exc_info=True)


# ---- request building -----------------------------------------------------------------------


def supports_stream_options(api_version):
    """``stream_options`` exists from api-version 2024-09-01-preview (and every later version)."""
    if not api_version:
        return True
    match = VERSION_DATE.match(api_version)
    if not match:
        return True  # "v1", "latest", "preview": the newer surfaces
    return match.group(1) >= "2024-09-01"


def merge_params(spec, params=None):
    """Body parameters: defaults → user ``params`` → group addParams → dropParams; reasoning fixes."""
    merged = dict(DEFAULT_PARAMS)
    if spec.max_output:
        merged["max_tokens"] = spec.max_output
    merged.update(params or {})
    merged.update(spec.add_params)
    if spec.reasoning and not spec.force_prompt:
        if "max_tokens" in merged:
            value = merged.pop("max_tokens")
            merged.setdefault("max_completion_tokens", value)
        for name in SAMPLING_PARAMS:
            merged.pop(name, None)
    for name in spec.drop_params:
        merged.pop(name, None)
    return merged


def _text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def flatten_prompt(messages):
    """The conversation as one completions ``prompt`` (forcePrompt groups)."""
    lines = []
    for message in messages:
        role = message.get("role", "user")
        name = {"system": "System", "assistant": "Assistant", "tool": "Tool"}.get(role, "User")
        lines.append(f"{name}: {_text_of(message.get('content'))}")
    lines.append("Assistant:")
    return "\n\n".join(lines)


def build_request(spec, messages, *, params=None, tools=None, tool_choice=None, stream=True):
    """(route, body) for ``spec``: route is "chat" or "completions"; body excludes ``model``."""
    body = merge_params(spec, params)
    if spec.force_prompt:
        body["prompt"] = flatten_prompt(messages)
        route = "completions"
    else:
        body["messages"] = messages
        route = "chat"
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
    if stream:
        body["stream"] = True
        if supports_stream_options(spec.api_version) and "stream_options" not in spec.drop_params:
            body["stream_options"] = {"include_usage": True}
    return route, body


async def _create(spec, messages, *, params, tools, tool_choice, stream, timeout, client):
    route, body = build_request(
        spec, messages, params=params, tools=tools, tool_choice=tool_choice, stream=stream
    )
    client = client or client_for(spec)
    messages_or_prompt = {k: body.pop(k) for k in ("messages", "prompt") if k in body}
    stream_flag = body.pop("stream", False)
    api = client.completions if route == "completions" else client.chat.completions
    return await api.create(
        model=spec.deployment,
        stream=stream_flag,
        extra_body=body,
        timeout=httpx2.Timeout(timeout, connect=CONNECT_TIMEOUT),
        **messages_or_prompt,
    )


# ---- streaming ------------------------------------------------------------------------------


def _extra(obj, name):
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    return value


async def stream_chat(
    model, messages, *, params=None, tools=None, tool_choice=None, idle_timeout=60.0, client=None
):
    """Stream one answer from ``model`` (a ModelSpec) as events; raises UpstreamError."""
    try:
        stream = await _create(
            model, messages, params=params, tools=tools, tool_choice=tool_choice,
            stream=True, timeout=idle_timeout, client=client,
        )
    except openai.OpenAIError as exc:
        raise map_error(exc, model) from None
    iterator = stream.__aiter__()
    calls = {}
    finished = False
    try:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation (a user's Stop) that lands as a chunk arrives.
                async with asyncio.timeout(idle_timeout):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise UpstreamError(
                    "upstream_stalled",
                    f"The model stopped answering (nothing for {idle_timeout:g} seconds).",
                    admin_detail=_where(model) + f": no chunk for {idle_timeout:g} s",
                ) from None
            usage = getattr(chunk, "usage", None)
            for choice in getattr(chunk, "choices", None) or []:
                for event in _choice_events(model, choice, calls):
                    if isinstance(event, Finish):
                        finished = True
                    yield event
            if usage is not None:
                yield Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
    except openai.OpenAIError as exc:
        raise map_error(exc, model) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(
            "upstream_protocol",
            "The model sent an answer Lapis could not read.",
            admin_detail=_where(model) + f": malformed stream ({type(exc).__name__})",
        ) from None
    finally:
        await stream.close()
    if not finished:
        raise UpstreamError(
            "upstream_protocol",
            "The answer ended before it was complete.",
            admin_detail=_where(model) + ": the stream ended without a finish reason",
        )


def _choice_events(model, choice, calls):
    if model.force_prompt:
        text = getattr(choice, "text", None)
        if text:
            yield TextDelta(text)
    else:
        delta = getattr(choice, "delta", None)  # async-filter annotations have no delta
        if delta is not None:
            if delta.content:
                yield TextDelta(delta.content)
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
    reason = getattr(choice, "finish_reason", None)
    if reason:
        for index in sorted(calls):
            entry = calls.pop(index)
            yield ToolCall(entry["id"], entry["name"], entry["arguments"])
        yield Finish(reason, _extra(choice, "content_filter_results") or None)


async def complete_chat(model, messages, *, params=None, tools=None, tool_choice=None, timeout=30.0, client=None):
    """One non-streamed answer (titles, summaries); raises UpstreamError."""
    try:
        response = await _create(
            model, messages, params=params, tools=tools, tool_choice=tool_choice,
            stream=False, timeout=timeout, client=client,
        )
    except openai.OpenAIError as exc:
        raise map_error(exc, model) from None
    usage = response.usage
    usage = Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else None
    if not response.choices:
        return Completion("", [], None, usage)
    choice = response.choices[0]
    if model.force_prompt:
        return Completion(choice.text or "", [], choice.finish_reason, usage)
    message = choice.message
    calls = [
        ToolCall(call.id, call.function.name, call.function.arguments or "")
        for call in (message.tool_calls or [])
        if getattr(call, "function", None)
    ]
    return Completion(message.content or "", calls, choice.finish_reason, usage)


# ---- errors ---------------------------------------------------------------------------------


def _where(model):
    return f'group "{model.group}", model "{model.key}", deployment "{model.deployment}"'


def _retry_after(response):
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def _filtered(results):
    """"violence (high), hate (medium)" from Azure's content_filter_result(s)."""
    parts = []
    for category, result in (results or {}).items():
        if isinstance(result, dict) and result.get("filtered"):
            severity = result.get("severity")
            parts.append(f"{category.replace('_', ' ')} (severity {severity})" if severity else category.replace("_", " "))
    return ", ".join(parts)


def _short(text, limit=300):
    text = str(text or "").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _resolved_references(secret):
    """What the ``${VAR}`` references in ``secret``'s text resolved to (e.g. a token in a
    gateway's baseURL), found by matching the text as written against the resolved value."""
    written = secret.display
    parts = re.split(r"\$\{[^}]*\}", written)
    if len(parts) == 1:
        return []
    pattern = "(.*?)".join(re.escape(part) for part in parts) + "$"
    found = re.match(pattern, secret.reveal(), re.S)
    return [value for value in found.groups() if value] if found else []


def _scrubbed(text, model):
    """``text`` with the target's key and header values masked: a gateway may echo what it got."""
    target = model.target
    if target is None:
        return text
    secrets = [value.reveal() for _, value in target.headers]
    if target.api_key:
        secrets.append(target.api_key.reveal())
    secrets.extend(_resolved_references(target.base_url))
    for secret in secrets:
        if len(secret) >= 4:  # masking "a" or "ab" would garble the message, not protect anything
            text = text.replace(secret, "••••")
    return text


def map_error(exc, model):
    """An SDK exception as an UpstreamError with a user message and a staff detail."""
    where = _where(model)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    body = getattr(exc, "body", None)
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code") or getattr(exc, "code", None) or "")
    upstream_message = _short(_scrubbed(str(body.get("message") or getattr(exc, "message", "")), model))
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamError(
            "upstream_unreachable", "The model did not answer in time. Try again.",
            admin_detail=f"{where}: timed out",
        )
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError(
            "upstream_unreachable", "Lapis could not reach the model. Try again in a moment.",
            admin_detail=f"{where}: connection failed ({type(exc.__cause__).__name__ if exc.__cause__ else 'connection error'})",
        )
    if isinstance(exc, openai.RateLimitError):
        retry = _retry_after(response)
        when = (
            f"in {retry:g} second{'' if retry == 1 else 's'}" if retry is not None else "in a moment"
        )
        return UpstreamError(
            "rate_limited", f"The model is busy (rate limit reached). Try again {when}.",
            admin_detail=f"{where}: 429 {upstream_message}", retry_after=retry, status=status,
        )
    if status == 400 and code == "content_filter":
        inner = body.get("innererror") or body.get("inner_error") or {}
        results = inner.get("content_filter_result") or inner.get("content_filter_results") or {}
        reasons = _filtered(results)
        return UpstreamError(
            "content_filter_prompt",
            "Azure's content filter blocked your message" + (f": {reasons}." if reasons else "."),
            admin_detail=f"{where}: prompt filtered {reasons}", status=status, filter_results=results or None,
        )
    if code == "context_length_exceeded":
        return UpstreamError(
            "context_length_exceeded",
            "The conversation is too long for this model. Start a new conversation or pick a model with a larger context.",
            admin_detail=f"{where}: {upstream_message}", status=status,
        )
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return UpstreamError(
            "auth_failed", "Lapis could not authenticate to this model's Azure resource. Ask an admin to check its key or access.",
            admin_detail=f"{where}: {status} authentication failed (auth mode {model.auth_mode}); check the key or role assignment",
            status=status,
        )
    if isinstance(exc, openai.NotFoundError):
        if code == "DeploymentNotFound":
            return UpstreamError(
                "deployment_not_found", "This model is not available right now (its deployment was not found). Ask an admin.",
                admin_detail=f"{where}: deployment not found at {model.request_url}", status=status,
            )
        return UpstreamError(
            "deployment_not_found", "This model is not available right now (resource not found). Ask an admin.",
            admin_detail=f"{where}: 404 {upstream_message} at {model.request_url} (check the URL and api-version {model.api_version})",
            status=status,
        )
    if isinstance(exc, openai.BadRequestError) or status in (400, 422):
        return UpstreamError(
            "bad_request", f"The model rejected the request: {upstream_message}",
            admin_detail=f"{where}: 400 {upstream_message}", status=status,
        )
    if isinstance(exc, openai.APIStatusError):
        return UpstreamError(
            "upstream_error", "Azure OpenAI had a server error. Try again in a moment.",
            admin_detail=f"{where}: {status} {upstream_message}", status=status,
        )
    if code == "content_filter":
        return UpstreamError(
            "content_filter_answer", "Azure's content filter stopped the answer.",
            admin_detail=f"{where}: {upstream_message}",
        )
    return UpstreamError(
        "upstream_error", "The model failed while answering. Try again.",
        admin_detail=f"{where}: {type(exc).__name__}: {upstream_message}",
    )
