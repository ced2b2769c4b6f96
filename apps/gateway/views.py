"""The OpenAI-compatible API under /v1/: models, chat completions (streamed and not) and
embeddings, for callers holding a personal API key (apps.gateway.auth).

Every request is checked in the order chat checks it, before anything reaches Azure: the key,
the model (configured, of the right type, open to the key's user: apps.azure.access), the body,
the user's budgets (apps.governance.quotas) and rate limits (apps.governance.ratelimits: an API
call counts as an answer, per minute and at once). Only apps.azure talks to Azure
(apps.azure.passthrough). Every answer but a 200 is an OpenAI-shaped error (apps.gateway.errors).
"""

import functools
import json
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.azure import access, passthrough
from apps.azure.client import Usage
from apps.azure.errors import UpstreamError
from apps.azure.registry import get_registry
from apps.chat.budget import record_usage
from apps.chat.models import Purpose
from apps.gateway import checks_input
from apps.gateway.auth import authenticate
from apps.gateway.errors import ApiError, from_upstream, retry_headers
from apps.governance.quotas import OverBudget, check_budget
from apps.governance.ratelimits import RateLimited, answer_permit

logger = logging.getLogger("lapis.gateway")


def api_view(*methods):
    """An async API view: no session, no CSRF (the key is the credential), ``methods`` only;
    an ApiError becomes its JSON answer and anything unexpected a JSON 500 (logged)."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(405, f"{request.method} is not allowed on {request.path}; use "
                                   f"{' or '.join(methods)}.", code="method_not_allowed",
                                   headers={"Allow": ", ".join(methods)})
                return await view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except Exception:
                logger.exception("API call %s %s failed", request.method, request.path)
                return ApiError(500, "Lapis failed while handling the request. Try again; if it "
                                "keeps failing, tell an admin.", code="internal_error").response()

        return csrf_exempt(login_not_required(wrapper))

    return decorate


# ---- models ---------------------------------------------------------------------------------

SERVED = ("chat", "embedding", "transcription", "speech")
ENDPOINTS = {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings",
             "transcription": "/v1/audio/transcriptions", "speech": "/v1/audio/speech"}


def _served(spec):
    """Whether the API serves ``spec`` (chat through chat/completions, embeddings, audio)."""
    return spec.type in SERVED and not spec.responses_api


def _model_object(spec):
    return {"id": spec.key, "object": "model", "created": 0, "owned_by": spec.group}


@api_view("GET")
async def models(request):
    mine = await sync_to_async(_models_of)(request)
    return JsonResponse({"object": "list", "data": [_model_object(s) for s in mine if _served(s)]})


def _models_of(request):
    return get_registry().for_user(authenticate(request).user).all_models()


@api_view("GET")
async def model_detail(request, name):
    _key, spec = await sync_to_async(_admission)(request, name, kind=None, budget=False)
    return JsonResponse(_model_object(spec))


def _admission(request, name, *, kind, budget=True, key=None):
    """(ApiKey, ModelSpec) for a call to ``name``: the key (unless given, already checked), the
    model (see ``_model``) and the budgets, in one thread hop (each hop waits its turn on
    Django's database thread)."""
    key = key or authenticate(request)
    spec = _model(key.user, name, kind=kind)
    if budget:
        try:
            check_budget(user=key.user)
        except OverBudget as exc:
            wait = (exc.resets - timezone.now()).total_seconds()
            raise ApiError(429, exc.message, code="insufficient_quota", type="insufficient_quota",
                           headers=retry_headers(wait, retry=False)) from None
    return key, spec


def _model(user, name, *, kind):
    """The ModelSpec ``name`` if it is configured, served, of ``kind`` and open to ``user``."""
    if not isinstance(name, str) or not name:
        raise ApiError(400, "You must provide a model parameter: one of the names GET /v1/models "
                       "lists.", code="missing_model", param="model")
    spec = get_registry().get(name)
    if spec is None or not _served(spec):
        detail = ""
        if spec is not None and spec.responses_api:
            detail = " It is served through Azure's Responses API, which /v1/ does not offer yet."
        elif spec is not None:
            detail = f" It is an {spec.type} model, which /v1/ does not serve."
        raise ApiError(404, f"The model {name!r} does not exist in Lapis or is not available through "
                       f"the API.{detail} GET /v1/models lists the models your key may use.",
                       code="model_not_found", param="model")
    try:
        access.check(user=user, spec=spec)
    except access.ModelNotAllowed as exc:
        raise ApiError(403, str(exc), code="model_not_allowed", param="model") from None
    if kind is not None and spec.type != kind:
        where = ENDPOINTS[spec.type]
        raise ApiError(400, f"The model {name!r} is an {spec.type} model: call {where} with it.",
                       code="wrong_model_type", param="model")
    return spec


# ---- limits ---------------------------------------------------------------------------------


async def _admit(user):
    """The rate limits (an API call counts as an answer: per minute, and running at once),
    after ``_admission``'s budgets. Returns the running-at-once Permit: ``release()`` it (sync,
    idempotent) when done."""
    claim = answer_permit(user=user)
    try:
        permit = await claim.__aenter__()
    except RateLimited as exc:
        raise ApiError(429, exc.message, code="rate_limit_exceeded",
                       headers=retry_headers(exc.retry_after)) from None
    permit.kept = True  # released by the caller, which may outlive this call (a stream)
    await claim.__aexit__(None, None, None)
    return permit


async def _release(permit):
    await sync_to_async(permit.release, thread_sensitive=False)()


def _usage(data):
    """A client Usage from Azure's usage object, or None."""
    if not isinstance(data, dict):
        return None
    details = data.get("completion_tokens_details") or {}
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0),
                 int(details.get("reasoning_tokens") or 0))


async def _record(*, purpose, spec, user, usage, messages=None, text=""):
    await record_usage(purpose=purpose, model=spec, user_id=user.pk, conversation_id=None,
                       usage=usage, messages=messages, text=text)


# ---- chat -----------------------------------------------------------------------------------


@api_view("POST")
async def chat_completions(request):
    body = checks_input.json_body(request)
    key, spec = await sync_to_async(_admission)(request, body.get("model"), kind="chat")
    user = key.user
    stream = checks_input.chat_request(body, spec=spec)
    permit = await _admit(user)
    upstream = passthrough.chat_body(spec, body, stream=stream)
    if not stream:
        try:
            data = await passthrough.post_json(spec, "chat/completions", upstream)
        except UpstreamError as exc:
            raise from_upstream(exc) from None
        finally:
            await _release(permit)
        await _record(purpose=Purpose.API, spec=spec, user=user, usage=_usage(data.get("usage")),
                      messages=body["messages"], text=_answer_text(data))
        data.pop("prompt_filter_results", None)
        return JsonResponse(data)
    return await _stream(spec, user, body, upstream, permit)


def _answer_text(data):
    parts = []
    for choice in data.get("choices") or ():
        message = (choice or {}).get("message") or {}
        parts.append(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            parts.append(((call or {}).get("function") or {}).get("arguments") or "")
    return "".join(parts)


async def _stream(spec, user, body, upstream, permit):
    """Wait for Azure's first chunk (so that a refusal is an HTTP error, as OpenAI answers it),
    then relay the stream as OpenAI sends it."""
    want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = passthrough.stream_chat_chunks(spec, upstream, idle_timeout=settings.CHAT_IDLE_TIMEOUT)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except UpstreamError as exc:
        await _release(permit)
        raise from_upstream(exc) from None
    except BaseException:
        await _release(permit)
        raise
    relay = _Relay(spec=spec, user=user, messages=body["messages"], want_usage=want_usage,
                   first=first, events=events, permit=permit)
    response = StreamingHttpResponse(relay, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold chunks back
    return response


class _Relay:
    """One streamed answer: Azure's chunks in OpenAI's shape, then the usage recorded.

    Iterated once by Django; ``close()`` (Django calls it when the response ends, however it
    ends, even if it was never iterated) frees the running slot."""

    def __init__(self, *, spec, user, messages, want_usage, first, events, permit):
        self.spec = spec
        self.user = user
        self.messages = messages
        self.want_usage = want_usage
        self.first = first
        self.events = events
        self.permit = permit
        self.usage = None
        self.pieces = []  # answer text and tool arguments, for an estimate without usage

    def __aiter__(self):
        return self.run()

    def close(self):
        self.permit.release()

    async def run(self):
        events = self.events
        try:
            if self.first is not None and (out := self.shape(self.first.data)):
                yield out
            async for chunk in events:
                if out := self.shape(chunk.data):
                    yield out
            yield b"data: [DONE]\n\n"
        except UpstreamError as exc:  # mid-stream: the SDKs raise APIError on an error event
            yield b"data: " + json.dumps(from_upstream(exc).body()).encode() + b"\n\n"
        finally:
            await events.aclose()
            await _release(self.permit)
            await _record(purpose=Purpose.API, spec=self.spec, user=self.user,
                          usage=_usage(self.usage), messages=self.messages,
                          text="" if self.usage else "".join(self.pieces))

    def shape(self, data):
        """The SSE bytes of one chunk for the caller, or None for a chunk OpenAI does not send
        (Azure's prompt-filter chunk, delta-less filter annotations, usage not asked for)."""
        usage = data.get("usage")
        if usage:
            self.usage = usage
        choices = data.get("choices")
        if choices:
            kept = [c for c in choices if isinstance(c, dict) and "delta" in c]
            if not kept:
                return None
            if len(kept) != len(choices):
                data["choices"] = kept
            for choice in kept:
                self._collect(choice["delta"])
            if not self.want_usage:
                data.pop("usage", None)
        elif not (usage and self.want_usage):
            return None
        return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def _collect(self, delta):
        if not isinstance(delta, dict):
            return
        if content := delta.get("content"):
            self.pieces.append(content)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict) and (arguments := (call.get("function") or {}).get("arguments")):
                self.pieces.append(arguments)


# ---- embeddings -----------------------------------------------------------------------------


@api_view("POST")
async def embeddings(request):
    body = checks_input.json_body(request)
    key, spec = await sync_to_async(_admission)(request, body.get("model"), kind="embedding")
    user = key.user
    texts = checks_input.embeddings_request(body)
    permit = await _admit(user)
    try:
        data = await passthrough.post_json(spec, "embeddings", passthrough.plain_body(spec, body))
    except UpstreamError as exc:
        raise from_upstream(exc) from None
    finally:
        await _release(permit)
    usage = data.get("usage") or {}
    counted = Usage(int(usage.get("prompt_tokens") or 0), 0) if usage else None
    await _record(purpose=Purpose.EMBEDDING, spec=spec, user=user, usage=counted,
                  messages=[{"role": "user", "content": t} for t in texts])
    return JsonResponse(data)


# ---- audio ----------------------------------------------------------------------------------


@api_view("POST")
async def speech(request):
    body = checks_input.json_body(request)
    key, spec = await sync_to_async(_admission)(request, body.get("model"), kind="speech")
    text = checks_input.speech_request(body)
    permit = await _admit(key.user)
    try:
        content_type, audio = await passthrough.post(spec, "audio/speech",
                                                     json_body=passthrough.plain_body(spec, body))
    except UpstreamError as exc:
        raise from_upstream(exc) from None
    finally:
        await _release(permit)
    # Billed by characters; the budgets count tokens: the input's, estimated.
    await _record(purpose=Purpose.AUDIO, spec=spec, user=key.user, usage=None,
                  messages=[{"role": "user", "content": text}])
    return HttpResponse(audio, content_type=content_type)


@api_view("POST")
async def transcriptions(request):
    key = await sync_to_async(authenticate)(request)  # before the form is parsed
    fields, upload = await sync_to_async(checks_input.transcription_request)(request)
    key, spec = await sync_to_async(_admission)(request, fields.pop("model", None), kind="transcription", key=key)
    permit = await _admit(key.user)
    try:
        content_type, answer = await passthrough.post(spec, "audio/transcriptions", fields=fields, file=upload)
    except UpstreamError as exc:
        raise from_upstream(exc) from None
    finally:
        await _release(permit)
    # Billed by the minute; the budgets count tokens: the transcript's, estimated.
    await _record(purpose=Purpose.AUDIO, spec=spec, user=key.user, usage=None,
                  text=answer.decode("utf-8", "replace"))
    return HttpResponse(answer, content_type=content_type)


# ---- anything else under /v1/ ---------------------------------------------------------------


@csrf_exempt
@login_not_required
def not_found(request, rest=""):
    return ApiError(404, f"Unknown request URL: {request.method} {request.path}. Lapis serves "
                    "/v1/models, /v1/chat/completions, /v1/embeddings, /v1/audio/transcriptions and "
                    "/v1/audio/speech.",
                    code="unknown_url").response()


