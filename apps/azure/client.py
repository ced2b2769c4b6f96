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
import email.utils
import ipaddress
import json
import logging
import os
import random
import re
import time
import urllib.request
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import httpx2
import openai
from django.conf import settings

from apps.azure import health
from apps.azure.errors import UpstreamError, wait_phrase
from apps.azure.sse import DONE, SSEDecoder
from apps.observability import observe

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
# Purposes of a call: "chat" (answers) and the side calls "title" and "summary".
SIDE_CALLS = frozenset({"title", "summary"})
# What a side call sets for itself or must not get: the group's addParams still reach titles and
# summaries, except these. A 2,048-token cap meant for answers would replace a title's 24, and a
# response format or tools meant for answers break them (Azure refuses ``json_object`` unless a
# message mentions JSON, and a title or summary prompt does not).
SIDE_CALL_OWNED = frozenset({
    "max_tokens", "max_completion_tokens", "max_output_tokens", "response_format", "tools",
    "tool_choice", "functions", "function_call", "parallel_tool_calls", "n", "stop", "stream",
    "stream_options", "logprobs", "top_logprobs", "prediction", "audio", "modalities",
})
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
class ReasoningDelta:
    """A piece of the reasoning summary (Responses API): shown collapsed, never a prompt."""

    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included, as Azure counts (and bills) them
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from Azure's prompt cache (billed less)


def cached_of(details):
    """``cached_tokens`` of Azure's prompt/input token details (a dict, an SDK object or None)."""
    if isinstance(details, dict):
        return details.get("cached_tokens") or 0
    return getattr(details, "cached_tokens", 0) or 0


@dataclass(frozen=True)
class Retry:
    """Azure answered ``status`` (429, 503, ...) before the first byte; Lapis sends the request
    again after ``seconds`` (``attempt`` counts the retries, from 1)."""

    seconds: float
    status: int
    attempt: int


@dataclass(frozen=True)
class FilterUnavailable:
    """Azure's content filter could not check the ``where`` ("prompt" or "answer"): its results
    carried an ``error`` object instead of verdicts. ``message`` is Azure's reason."""

    where: str
    message: str


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
    return (target.kind, target.base_url.reveal(), target.shape, target.api_version,
            target.auth_mode, key, headers)


def local_identity_problem():
    """Why the local identity endpoint can't be used (IDENTITY_ENDPOINT on a loopback host and
    IDENTITY_HEADER, as the simulator's ``/msi/token`` is reached), or None when it can."""
    endpoint = os.environ.get("IDENTITY_ENDPOINT", "")
    try:
        host = urlsplit(endpoint).hostname or ""
    except ValueError:
        host = ""
    if not endpoint or not os.environ.get("IDENTITY_HEADER"):
        return "IDENTITY_ENDPOINT and IDENTITY_HEADER are not both set"
    if not _is_loopback(host):
        return f"IDENTITY_ENDPOINT's host {host or '(none)'} is not a loopback address"
    return None


def require_local_identity():
    """With ENTRA_LOCAL_IDENTITY_ONLY (DEBUG, the tests, ``make run``) Entra must use the local
    identity endpoint: raise UpstreamError unless IDENTITY_ENDPOINT (on a loopback host) and
    IDENTITY_HEADER are set. Without them azure-identity's managed-identity credential would
    probe the cloud metadata address 169.254.169.254 (and wait for it to time out)."""
    if not getattr(settings, "ENTRA_LOCAL_IDENTITY_ONLY", False):
        return
    problem = local_identity_problem()
    if problem is None:
        return
    raise UpstreamError(
        "auth_failed",
        "Lapis could not get an Entra ID token: this server may use only a local identity "
        "endpoint, and none is set up. Ask an admin.",
        admin_detail=f"ENTRA_LOCAL_IDENTITY_ONLY is on and {problem}: Lapis refuses to let "
        "azure-identity try the cloud metadata address. Point IDENTITY_ENDPOINT at the "
        "simulator's /msi/token (with IDENTITY_HEADER), or turn ENTRA_LOCAL_IDENTITY_ONLY off.",
    )


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _entra_token_provider():
    from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

    require_local_identity()
    loop = asyncio.get_running_loop()
    credential = _credentials.get(loop)
    if credential is None:
        credential = _credentials[loop] = DefaultAzureCredential()
    return get_bearer_token_provider(credential, ENTRA_SCOPE)


# The SDK retries a 429 or 503 after the wait the service asks for, up to two minutes per
# attempt, while the user sees nothing. Lapis retries only short waits; a longer one is reported
# at once with when to try again.
MAX_RETRY_WAIT = 10.0
DEPLOYMENT_ROUTES = frozenset({"/chat/completions", "/completions", "/images/generations", "/images/edits"})


class _ShortWaitsOnly:
    """Mixed into the SDK clients: no retry when ``retry-after`` exceeds MAX_RETRY_WAIT."""

    def _should_retry(self, response):
        retry_after = self._parse_retry_after_header(response.headers)
        if retry_after is not None and retry_after > MAX_RETRY_WAIT:
            return False
        return super()._should_retry(response)


class AzureClient(_ShortWaitsOnly, openai.AsyncAzureOpenAI):
    """Deployment routes (chat, completions, images) go to ``Target.request_url``.

    Why: the SDK appends ``/deployments/{model}`` to any base whose path lacks "/deployments",
    so a gateway base that already names the deployment (Cloudflare's
    ``.../azure-openai/{instance}/{deployment}``, an APIM ``.../{instance}/{deployment}``) would
    get it a second time. One builder for the SDK, the stream reader and the admin preview keeps
    the three from ever disagreeing.
    """

    def __init__(self, *, target=None, **options):
        # target None (a copy the SDK makes by itself): the SDK's own rule applies.
        super().__init__(**options)
        self._lapis_target = target

    def _build_request(self, options, *, retries_taken=0):
        body = options.json_data
        target = self._lapis_target
        if target is not None and options.url in DEPLOYMENT_ROUTES and isinstance(body, Mapping):
            model = body.get("model")
            if model is not None:
                options = options.model_copy()
                options.url = target.request_url(model, options.url.lstrip("/"), query=False)
        return super()._build_request(options, retries_taken=retries_taken)


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
    # No Azure call follows a redirect: a 3xx is an error naming its status (map_error), never a
    # second request (with the prompt) to wherever the Location points.
    transport = http_client or openai.DefaultAsyncHttpxClient(follow_redirects=False)
    options = {"default_headers": headers, "http_client": transport, "max_retries": 2}
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
        client = AzureClient(target=target, api_version=target.api_version, **where, **auth, **options)
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
    clients = list(_clients.values()) + list(_sessions.values())
    _clients.clear()
    _sessions.clear()
    _token_providers.clear()
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


def merge_params(spec, params=None, *, purpose="chat"):
    """Body parameters: defaults → ``params`` → group addParams → dropParams; reasoning fixes.

    ``purpose`` "title" or "summary": ``params`` carry the call's own cap, and the addParams in
    SIDE_CALL_OWNED are left out (dropParams still apply: they remove what the endpoint refuses).
    """
    if purpose != "chat" and purpose not in SIDE_CALLS:
        raise ValueError(f"unknown call purpose {purpose!r}")
    merged = dict(DEFAULT_PARAMS)
    if spec.max_output:
        merged["max_tokens"] = spec.max_output
    merged.update(params or {})
    added = spec.add_params
    if purpose in SIDE_CALLS:
        added = {name: value for name, value in added.items() if name not in SIDE_CALL_OWNED}
    merged.update(added)
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


def build_request(spec, messages, *, params=None, tools=None, tool_choice=None, stream=True, purpose="chat"):
    """(route, body) for ``spec``: route is "chat" or "completions"; body excludes ``model``."""
    body = merge_params(spec, params, purpose=purpose)
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


async def _create(spec, messages, *, params, tools, tool_choice, stream, timeout, client, purpose):
    route, body = build_request(
        spec, messages, params=params, tools=tools, tool_choice=tool_choice, stream=stream,
        purpose=purpose,
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
#
# Streamed answers do not go through the SDK: it builds a tree of pydantic objects per chunk,
# and the httpx2 read path beneath it (h11, anyio, a timeout scope per read) costs several times
# what Lapis's whole relay may spend per chunk (python -m tests.bench.stream_reader prints both).
# Lapis sends the same request the SDK would (URL, query, headers, auth, body) with aiohttp
# (already a dependency, through azure-identity: a maintained client with a C HTTP parser whose
# read path costs little more than asyncio's own) and decodes the SSE stream itself (sse.py).
# Non-streamed calls (titles, summaries, images) keep the SDK.

MAX_RETRIES = 2  # as the SDK: two more attempts before the first byte
INITIAL_RETRY_DELAY = 0.5
MAX_BACKOFF = 8.0
RETRY_STATUSES = frozenset({408, 409, 429})
USER_AGENT = {  # what the SDK clients above send, so gateways see one client either way
    "azure": f"{AzureClient.__name__}/Python {openai.__version__}",
    "openai": f"{OpenAIClient.__name__}/Python {openai.__version__}",
}

_sessions = {}
_token_providers = {}


def stream_session():
    """The process's HTTP session for streamed answers (per event loop): never follows
    redirects (each request says so), no cap on connections (1,000 answers at once are 1,000
    connections; limits live elsewhere), proxies from the environment like httpx's default."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30)
        # trust_env stays off: it would also read ~/.netrc (a thread hop per request, and Basic
        # credentials Lapis did not ask for); proxies come from _proxy_for instead.
        session = _sessions[loop] = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )
    return session


def _proxy_for(url):
    """The proxy the environment sets for ``url`` (HTTPS_PROXY/HTTP_PROXY, NO_PROXY), as httpx
    and the SDK honour it, or None."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return proxy
    return None


def _token_provider():
    loop = asyncio.get_running_loop()
    provider = _token_providers.get(loop)
    if provider is None:
        provider = _token_providers[loop] = _entra_token_provider()
    return provider


def stream_url(target, deployment, route):
    """The URL (no query) the stream reader posts ``route`` ("chat/completions" or
    "completions") of ``deployment`` to: ``Target.request_url``, as the SDK clients do."""
    return target.request_url(deployment, route, query=False)


async def request_headers(target):
    """The headers the SDK sends for ``target``: auth (api-key, or a bearer key or Entra token),
    then ``additionalHeaders``, which win (an explicit ``api-key``/``Authorization`` included)."""
    extra = {name: value.reveal() for name, value in target.headers}
    given = {name.lower() for name in extra}
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "user-agent": USER_AGENT.get(target.kind, USER_AGENT["azure"]),
    }
    if target.auth_mode == "entra":
        if "authorization" not in given:
            headers["authorization"] = f"Bearer {await _entra_token(target)}"
    elif target.kind == "openai":
        key = target.api_key.reveal()
        headers["authorization"] = f"Bearer {key}"
        headers["api-key"] = key
    elif "api-key" not in given:
        headers["api-key"] = target.api_key.reveal()
    headers.update(extra)
    return headers


async def _entra_token(target):
    from azure.core.exceptions import AzureError

    try:
        return await _token_provider()()
    except AzureError as exc:
        raise UpstreamError(
            "auth_failed",
            "Lapis could not get an Entra ID token for this model's Azure resource. Ask an admin "
            "to check the managed identity.",
            admin_detail=f"Entra token request failed ({type(exc).__name__}): "
            f"{_short(str(getattr(exc, 'message', '') or exc))}",
        ) from None


def _retry_after(headers):
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), or None."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)
    return None


def retry_wait(status, headers, attempt):
    """Seconds to wait before sending again after an error ``status``, or None for no retry.

    The SDK's rule (``x-should-retry``, then 408/409/429/5xx; ``retry-after`` up to 60 s, else
    0.5 s doubling with jitter), except that a wait longer than MAX_RETRY_WAIT is not waited
    for: the user is told at once when to try again.
    """
    if attempt >= MAX_RETRIES:
        return None
    retry_after = _retry_after(headers)
    if retry_after is not None and retry_after > MAX_RETRY_WAIT:
        return None
    should = headers.get("x-should-retry")
    if should == "false" or (should != "true" and status not in RETRY_STATUSES and status < 500):
        return None
    if retry_after is not None and 0 < retry_after <= 60:
        return retry_after
    return _backoff(attempt)


def _backoff(attempt):
    return min(INITIAL_RETRY_DELAY * 2.0**attempt, MAX_BACKOFF) * (1 - 0.25 * random.random())


async def stream_chat(
    model, messages, *, params=None, tools=None, tool_choice=None, idle_timeout=60.0,
    session=None,
):
    """Stream one answer from ``model`` (a ModelSpec) as events; raises only UpstreamError.

    Events: ``Retry`` (before the first byte, while a short 429/5xx wait runs), ``TextDelta``,
    ``ToolCall``, ``Finish``, ``FilterUnavailable``, ``Usage``. A stream that ends cleanly
    (``[DONE]`` or the end of the body) is complete, with or without a finish reason; a body cut
    off mid-chunk or a dropped connection raises ``upstream_broken``; nothing for
    ``idle_timeout`` seconds raises ``upstream_stalled``. Leaving the iteration early (a
    cancelled task, ``aclose``) closes the connection, so the upstream sees the disconnect.
    ``session`` (tests: an ``aiohttp.ClientSession``) replaces the process's session.
    A pool (``model.members``) streams from its members in turn (apps/azure/pools.py).
    """
    if model.members:
        from apps.azure.pools import stream_pool

        pooled = stream_pool(model, stream_chat, messages, params=params, tools=tools,
                             tool_choice=tool_choice, idle_timeout=idle_timeout, session=session)
        async with aclosing(pooled):
            async for event in pooled:
                yield event
        return
    route, body = build_request(
        model, messages, params=params, tools=tools, tool_choice=tool_choice, stream=True
    )
    target = model.target
    body = {"model": model.deployment, **body}
    url = stream_url(target, model.deployment, "chat/completions" if route == "chat" else route)
    query = {"api-version": target.api_version} if target.api_version else None
    events = stream_events(
        model, url, query, body, reader=_ChunkReader(model), idle_timeout=idle_timeout,
        session=session,
    )
    async with aclosing(events):
        async for event in events:
            yield event


async def stream_events(model, url, query, body, *, reader, idle_timeout, session=None):
    """POST ``body`` (JSON) to ``url`` as the SDK would and yield ``reader``'s events of the
    SSE answer (``Retry`` first while short 429/5xx waits run); raises only UpstreamError.

    ``reader`` turns decoded SSE events into Lapis events (``_ChunkReader`` for chat and
    completions, apps.azure.responses for the Responses API): ``read(events)``, ``done``,
    ``error``, ``pending_calls()`` and ``unfinished()`` (the error for a body that ended
    without the stream's own end, or None).
    """
    target = model.target
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    timeout = aiohttp.ClientTimeout(
        total=None, connect=None, sock_connect=CONNECT_TIMEOUT, sock_read=idle_timeout
    )
    session = session or stream_session()
    response = None
    call = observe.upstream_call(model)  # metrics and the upstream span (apps.observability)
    probe = health.Probe(model)  # this call's outcome, for the deployment's health
    try:
        for attempt in range(MAX_RETRIES + 1):
            headers = await request_headers(target)
            response = await _send(
                # A pool member with another behind it: a refused connection is not tried again.
                session, url, model, MAX_RETRIES if model.fails_over else attempt,
                params=query, data=content, headers=headers, timeout=timeout,
                allow_redirects=False, proxy=_proxy_for(url),
            )
            if response is None:
                await asyncio.sleep(_backoff(attempt))
                continue
            if response.status < 300:
                call.responded(response.status)
                break
            try:
                error_body = await response.read()
            except aiohttp.ClientError:
                error_body = b""
            response.release()
            # A pool member with another behind it hands a 429/5xx on at once (pools.py).
            wait = None if model.fails_over else retry_wait(response.status, response.headers, attempt)
            if wait is None:
                raise map_status(model, response.status, response.headers, error_body)
            call.retry(response.status, wait)
            probe.failed(status=response.status, retry_after=_retry_after(response.headers))
            probe.retrying()
            yield Retry(seconds=wait, status=response.status, attempt=attempt + 1)
            await asyncio.sleep(wait)
        async for event in _read_stream(model, response, idle_timeout, reader):
            probe.first_chunk()
            yield event
    except UpstreamError as exc:
        call.failed(exc)
        if not probe.done:
            probe.failed(status=exc.status, code=exc.code, retry_after=exc.retry_after)
        raise
    finally:
        call.end()
        probe.close()
        if response is not None:
            # At the end of the body the connection goes back to the pool; before it (a stop,
            # an error, a cancelled task) it is closed, which the upstream sees.
            if response.content.at_eof():
                response.release()
            else:
                response.close()


async def _send(session, url, model, attempt, **options):
    """The response to a POST (headers read), or None for a connection error to retry."""
    try:
        return await session.post(url, **options)
    except aiohttp.ConnectionTimeoutError:
        # Not retried: three 10 s attempts would leave the user waiting half a minute.
        raise UpstreamError(
            "upstream_unreachable",
            f"The model's server did not accept the connection within {CONNECT_TIMEOUT:g} "
            "seconds. Try again in a moment.",
            admin_detail=_where(model) + f": connect timeout ({CONNECT_TIMEOUT:g} s)",
        ) from None
    except TimeoutError:
        raise UpstreamError(
            "upstream_unreachable", "The model did not answer in time. Try again.",
            admin_detail=_where(model) + ": timed out waiting for the response",
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        if attempt < MAX_RETRIES:
            return None
        raise _unreachable(model, f"connection failed ({type(exc).__name__})") from None


def _unreachable(model, detail):
    return UpstreamError(
        "upstream_unreachable", "Lapis could not reach the model. Try again in a moment.",
        admin_detail=f"{_where(model)}: {detail}",
    )


def _broken(model, detail):
    return UpstreamError(
        "upstream_broken",
        "The connection to Azure broke while the answer was being written. Regenerate to try again.",
        admin_detail=f"{_where(model)}: {detail}",
    )


async def _read_stream(model, response, idle_timeout, reader):
    decoder = SSEDecoder()
    content = response.content
    try:
        while not reader.done:
            chunk = await content.readany()
            if not chunk:
                break  # the end of the body
            for event in reader.read(decoder.feed(chunk)):
                yield event
            if reader.error:
                raise reader.error
    except TimeoutError:  # aiohttp's sock_read: no byte for idle_timeout seconds
        raise UpstreamError(
            "upstream_stalled",
            f"The model stopped answering (nothing for {idle_timeout:g} seconds).",
            admin_detail=_where(model) + f": no chunk for {idle_timeout:g} s",
        ) from None
    except (aiohttp.ClientError, OSError) as exc:  # a reset, a chunked body cut short, ...
        raise _broken(model, f"connection broke mid-stream ({type(exc).__name__})") from None
    if not reader.done:
        last, partial = decoder.finish()
        for event in reader.read(last):
            yield event
        if reader.error and partial:  # the body ended inside a chunk: cut off, not malformed
            raise _broken(model, "the body ended in the middle of a chunk")
        if reader.error:
            raise reader.error
        if (problem := reader.unfinished()) is not None:
            raise problem
    for event in reader.pending_calls():
        yield event


class _ChunkReader:
    """Turns decoded SSE events of a chat or completions stream into Lapis events.

    Tolerates Azure's shapes: empty ``choices`` (prompt annotations, usage), delta-less choices
    (async-filter annotations), ``finish_reason`` inside ``delta``, tool calls in pieces.
    """

    __slots__ = ("model", "completion", "calls", "done", "filter_error_seen", "error")

    def __init__(self, model):
        self.model = model
        self.completion = model.force_prompt
        self.calls = {}
        self.done = False
        self.filter_error_seen = False
        self.error = None

    def read(self, events):
        """The Lapis events of ``events``; an error in one of them comes after the events
        before it (one network read may carry text and then a malformed or error event)."""
        out = []
        try:
            self._read(events, out)
        except UpstreamError as exc:
            self.error = exc
        return out

    def _read(self, events, out):
        for kind, data in events:
            if kind is not None and kind != "message":
                if kind == "error":
                    raise _stream_error(self.model, _loads(data, self.model))
                logger.debug("ignoring an SSE event of type %r from %s", kind, _where(self.model))
                continue  # not a chat-stream event: never answer text
            if data.startswith(DONE):
                self.done = True
                break
            chunk = _loads(data, self.model)
            if not isinstance(chunk, dict):
                raise _malformed(self.model, "a data event that is not an object")
            if chunk.get("error"):
                raise _stream_error(self.model, chunk)
            choices = chunk.get("choices")
            if choices:
                for choice in choices:
                    self._choice(choice, out)
            prompt_filters = chunk.get("prompt_filter_results")
            if prompt_filters and not self.filter_error_seen:
                for entry in prompt_filters:
                    self._filter_error((entry or {}).get("content_filter_results"), out, "prompt")
            usage = chunk.get("usage")
            if usage:
                out.append(Usage(
                    usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0,
                    cached_tokens=cached_of(usage.get("prompt_tokens_details")),
                ))

    def _choice(self, choice, out):
        delta = choice.get("delta")
        reason = choice.get("finish_reason")
        if self.completion:
            text = choice.get("text")
            if text:
                out.append(TextDelta(text))
        elif delta:
            content = delta.get("content")
            if content:
                out.append(TextDelta(content))
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self._tool_pieces(tool_calls)
            reason = reason or delta.get("finish_reason")
        filters = choice.get("content_filter_results")
        if filters and not self.filter_error_seen:
            self._filter_error(filters, out, "answer")
        if reason:
            out.extend(self.pending_calls())
            out.append(Finish(reason, filters or None))

    def _tool_pieces(self, tool_calls):
        for call in tool_calls:
            entry = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
            if call.get("id"):
                entry["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                entry["name"] += function["name"]
            if function.get("arguments"):
                entry["arguments"] += function["arguments"]

    def _filter_error(self, filters, out, where):
        error = filters.get("error") if isinstance(filters, dict) else None
        if isinstance(error, dict):
            self.filter_error_seen = True
            detail = _short(_scrubbed(str(error.get("message") or error.get("code") or ""), self.model), 200)
            out.append(FilterUnavailable(where=where, message=detail))

    def unfinished(self):
        """A chat stream that ends cleanly is complete, ``[DONE]`` or not."""
        return None

    def pending_calls(self):
        calls = [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]
        self.calls.clear()
        return calls


def _loads(data, model):
    try:
        return json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise _malformed(model, "a data event that is not JSON") from None


def _malformed(model, what):
    return UpstreamError(
        "upstream_protocol",
        "The model sent an answer Lapis could not read.",
        admin_detail=_where(model) + f": malformed stream ({what})",
    )


def _stream_error(model, data):
    """An ``error`` object sent inside a 200 stream."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {"message": str(error or data)}
    message = _short(_scrubbed(str(error.get("message") or ""), model))
    if str(error.get("code") or "") == "content_filter":
        return UpstreamError(
            "content_filter_answer", "Azure's content filter stopped the answer.",
            admin_detail=f"{_where(model)}: {message}",
        )
    return UpstreamError(
        "upstream_error", "The model failed while answering. Try again.",
        admin_detail=f"{_where(model)}: error event: {message}",
    )


async def complete_chat(
    model, messages, *, params=None, tools=None, tool_choice=None, timeout=30.0, client=None,
    purpose="chat",
):
    """One non-streamed answer; raises UpstreamError. ``purpose`` "title" or "summary" keeps
    the call's own cap and format (see ``merge_params``)."""
    try:
        response = await _create(
            model, messages, params=params, tools=tools, tool_choice=tool_choice,
            stream=False, timeout=timeout, client=client, purpose=purpose,
        )
    except openai.OpenAIError as exc:
        raise map_error(exc, model) from None
    usage = response.usage
    usage = Usage(
        usage.prompt_tokens or 0, usage.completion_tokens or 0,
        cached_tokens=cached_of(getattr(usage, "prompt_tokens_details", None)),
    ) if usage else None
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
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamError(
            "upstream_unreachable", "The model did not answer in time. Try again.",
            admin_detail=f"{where}: timed out",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
        return _unreachable(model, f"connection failed ({cause})")
    response = getattr(exc, "response", None)
    body = getattr(exc, "body", None)
    body = body if isinstance(body, dict) else {"message": getattr(exc, "message", "")}
    if response is not None:
        return status_error(model, response.status_code, response.headers, body)
    return _stream_error(model, {"error": body})


def map_status(model, status, headers, content):
    """An error response of the stream reader as an UpstreamError: from status and body bytes."""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        body = data.get("error", data)
        body = body if isinstance(body, dict) else {"message": str(body)}
    else:
        body = {"message": content[:300].decode("utf-8", "replace")}
    return status_error(model, status, headers, body)


def status_error(model, status, headers, body):
    """The UpstreamError for an HTTP ``status`` with Azure's error object ``body`` (code, message)."""
    where = _where(model)
    code = str(body.get("code") or "")
    upstream_message = _short(_scrubbed(str(body.get("message") or ""), model))
    if 300 <= status < 400:
        location = httpx2.URL(headers.get("location") or "")
        port = f":{location.port}" if location.port else ""
        elsewhere = f" to {location.scheme}://{location.host}{port}" if location.host else ""
        return UpstreamError(
            "upstream_redirect",
            f"Azure answered with a redirect ({status}); Lapis does not follow redirects. Ask an "
            "admin to check this model's endpoint.",
            admin_detail=f"{where}: {status} redirect{elsewhere} not followed (set the final URL "
            "in the config)",
            status=status,
        )
    if status == 429:
        retry = _retry_after(headers)
        return UpstreamError(
            "rate_limited", f"The model is busy (rate limit reached). Try again {wait_phrase(retry)}.",
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
    if status in (401, 403):
        return UpstreamError(
            "auth_failed", "Lapis could not authenticate to this model's Azure resource. Ask an admin to check its key or access.",
            admin_detail=f"{where}: {status} authentication failed (auth mode {model.auth_mode}); check the key or role assignment",
            status=status,
        )
    if status == 404:
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
    if status in (400, 422):
        return UpstreamError(
            "bad_request", f"The model rejected the request: {upstream_message}",
            admin_detail=f"{where}: 400 {upstream_message}", status=status,
        )
    return UpstreamError(
        "upstream_error", "Azure OpenAI had a server error. Try again in a moment.",
        admin_detail=f"{where}: {status} {upstream_message}", status=status,
    )
