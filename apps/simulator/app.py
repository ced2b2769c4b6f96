"""The Azure OpenAI simulator: a plain ASGI application (served by uvicorn).

``create_app(config)`` returns the app; ``config`` is a ``SimConfig``, a mapping in the YAML's
shape, or None for default.yaml. Routes (see azure-wire.md for the real service):

- ``POST /openai/deployments/{d}/chat/completions?api-version=`` (stream and not)
- ``POST /openai/deployments/{d}/completions?api-version=`` (text_completion, for forcePrompt)
- ``POST /openai/deployments/{d}/images/generations?api-version=`` (dall-e-3, gpt-image-1)
- ``POST /openai/deployments/{d}/embeddings?api-version=`` (text-embedding-*, see embeddings.py)
- ``POST /openai/deployments/{d}/audio/transcriptions`` and ``/audio/speech`` (whisper, tts: audio.py)
- ``POST {prefix}/{d}/chat/completions`` etc. for each ``path_prefixes`` entry (gateway shapes)
- ``POST /openai/images/generations:submit`` + ``GET /openai/operations/images/{id}`` (DALL-E 2)
- ``POST /openai/v1/chat/completions`` (deployment in body ``model``, no api-version)
- ``POST /openai/v1/responses`` (the Responses API: deployment in body ``model``; stream and not)
- ``POST /v1/chat/completions`` (serverless; key as bearer)
- ``GET /msi/token`` (App Service managed-identity protocol), ``GET /_sim/images/{token}.png``
- ``GET /_sim/requests``, ``POST /_sim/reset``, ``GET /_sim/health`` (control)

Replies and faults follow the ``[sim:...]`` language of apps/simulator/language.py.
"""

import collections
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import uuid

from apps.azure.tokens import count_messages, count_text

from . import audio, embeddings, engine, images, wire
from .config import SimConfig, build_config, load_config
from .exchange import Exchange

IDENTITY_API_VERSION = "2019-08-01"
COGNITIVE_RESOURCE = "https://cognitiveservices.azure.com"
MASKED_HEADERS = ("api-key", "authorization", "x-identity-header")
_DEPLOYMENT_ROUTE = re.compile(
    r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|completions|images/generations|embeddings|audio/transcriptions|audio/speech)$"
)
_OPS = r"(?P<op>chat/completions|completions|images/generations|embeddings|audio/transcriptions|audio/speech)"
_OPERATION_ROUTE = re.compile(r"^/openai/operations/images/(?P<id>[A-Za-z0-9-]+)$")
_IMAGE_ROUTE = re.compile(r"^/_sim/images/(?P<token>[A-Za-z0-9_.-]+)\.png$")


def _truncate(value):
    """Long strings (base64 images) are shortened in the request log to keep it small."""
    if isinstance(value, str) and len(value) > 2000:
        return value[:100] + f"...[{len(value)} chars]"
    if isinstance(value, dict):
        return {k: _truncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate(v) for v in value]
    return value


def _mask(headers):
    masked = {}
    for key, value in headers.items():
        if key in MASKED_HEADERS:
            value = "Bearer ***" if value.lower().startswith("bearer ") else "***"
        masked[key] = value
    return masked


class Simulator:
    def __init__(self, config):
        self.config = config
        self.log = collections.deque(maxlen=config.log_size)
        self.counters = collections.Counter()
        self.tokens = {}  # access token -> (expires_on, resource)
        self.operations = collections.OrderedDict()
        self.rate_windows = collections.defaultdict(collections.deque)
        self.image_secret = secrets.token_bytes(32)
        self._ids = itertools.count(1)
        self._gateway_routes = [
            re.compile("^" + re.escape(prefix) + r"/(?P<deployment>[^/]+)/" + _OPS + "$")
            for prefix in config.path_prefixes
        ]

    # ----------------------------------------------------------------- ASGI entry
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        ex = Exchange(scope, receive, send)
        await ex.read_body()
        if ex.path.startswith("/_sim/") and not ex.path.startswith("/_sim/images/"):
            await self._control(ex)
            return
        entry = {
            "id": next(self._ids),
            "time": time.time(),
            "method": ex.method,
            "path": ex.path,
            "query": ex.query,
            "headers": _mask(ex.headers),
            "json": None,
            "deployment": None,
            "status": None,
            "outcome": None,
        }
        self.log.append(entry)
        ex.entry = entry
        try:
            try:
                multipart = ex.headers.get("content-type", "").startswith("multipart/form-data")
                entry["json"] = None if multipart else _truncate(ex.json())
            except ValueError:
                await self._respond(ex, *wire.invalid_request("Invalid JSON body."))
                return
            await self._route(ex)
        finally:
            ex.close()
            entry["status"] = ex.status
            if entry["outcome"] is None:
                if ex.disconnected.is_set() and not ex.ended:
                    entry["outcome"] = "client_disconnected"
                elif ex.ended and (ex.status or 500) < 400:
                    entry["outcome"] = "completed"
                else:
                    entry["outcome"] = "error"

    async def _route(self, ex):
        path, method = ex.path, ex.method
        match = _DEPLOYMENT_ROUTE.match(path) or self._gateway_route(path)
        if match and method == "POST":
            await self._deployment_call(ex, match["deployment"], match["op"])
        elif path == "/openai/v1/chat/completions" and method == "POST":
            await self._v1_chat(ex)
        elif path == "/openai/v1/responses" and method == "POST":
            await self._v1_responses(ex)
        elif path == "/v1/chat/completions" and method == "POST":
            await self._serverless_chat(ex)
        elif path == "/openai/images/generations:submit" and method == "POST":
            await self._dalle2_submit(ex)
        elif (match := _OPERATION_ROUTE.match(path)) and method == "GET":
            await self._dalle2_poll(ex, match["id"])
        elif path == "/msi/token" and method == "GET":
            await self._identity(ex)
        elif (match := _IMAGE_ROUTE.match(path)) and method == "GET":
            await self._image_file(ex, match["token"])
        else:
            await self._respond(ex, *wire.resource_not_found())

    def _gateway_route(self, path):
        return next((m for route in self._gateway_routes if (m := route.match(path))), None)

    # ----------------------------------------------------------------- helpers
    def _headers(self, deployment=None):
        headers = [
            ("apim-request-id", str(uuid.uuid4())),
            ("x-ms-region", "Sweden Central"),
            ("x-request-id", str(uuid.uuid4())),
        ]
        if deployment is not None:
            window = self.rate_windows.get(deployment.name)
            rpm = deployment.rate_limit_rpm or 1000
            used = len(window) if window is not None else 0
            headers += [
                ("x-ratelimit-remaining-requests", max(0, rpm - used)),
                ("x-ratelimit-remaining-tokens", 150000),
            ]
        return headers

    async def _respond(self, ex, status, body, extra_headers=(), deployment=None):
        await ex.respond(status, body, [*self._headers(deployment), *extra_headers])

    def _api_version_ok(self, ex):
        version = ex.query.get("api-version")
        return version is not None and version in self.config.api_versions

    async def _refused(self, ex):
        """Answer a request with an unknown api-version or bad credentials as Azure does; True
        when it was answered (the caller stops)."""
        if not self._api_version_ok(ex):
            await self._respond(ex, *wire.resource_not_found())
            return True
        if problem := self._authorized(ex):
            await self._respond(ex, *problem)
            return True
        return False

    def _authorized(self, ex, *, key_as_bearer=False):
        """None when the caller may pass; otherwise the (status, body) to answer."""
        if "api-key" in ex.headers:
            return None if secrets.compare_digest(ex.headers["api-key"], self.config.api_key) else wire.bad_key()
        auth = ex.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return wire.bad_key()
        token = auth[7:].strip()
        if key_as_bearer and secrets.compare_digest(token, self.config.api_key):
            return None
        issued = self.tokens.get(token)
        if issued is None:
            return wire.bad_key() if key_as_bearer and not token.startswith("sim-entra.") else wire.bad_token()
        expires_on, resource = issued
        if time.time() >= expires_on or not resource.startswith(COGNITIVE_RESOURCE):
            return wire.bad_token()
        return None

    def _fault(self, markers, deployment, api_version):
        """A (status, body, headers) for a 429/500/503 the request must get, or None."""
        if deployment is not None and deployment.rate_limit_rpm:
            now = time.monotonic()
            window = self.rate_windows[deployment.name]
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= deployment.rate_limit_rpm:
                wait = 60 - (now - window[0])
                status, body = wire.rate_limited(api_version, math.ceil(wait))
                return status, body, _retry_headers(wait)
            window.append(now)
        for marker in markers:
            if marker.name not in ("429", "500", "503"):
                continue
            # deployment=NAME: only that deployment fails (one region of a pool); others answer.
            scope = marker.args.get("deployment")
            if scope is not None and (deployment is None or deployment.name != scope):
                continue
            self.counters[marker.text] += 1
            times = marker.int_arg("times")
            if times is not None and self.counters[marker.text] > times:
                continue
            if marker.name == "429":
                wait = marker.float_arg("retry_after", 1.0)
                status, body = wire.rate_limited(api_version, wait)
                return status, body, _retry_headers(wait)
            status, body = wire.server_error(int(marker.name))
            return status, body, []
        return None

    # ----------------------------------------------------------------- chat and completions
    async def _deployment_call(self, ex, name, op):
        if await self._refused(ex):
            return
        deployment = self.config.deployments.get(name)
        ex.entry["deployment"] = name
        if deployment is None:
            await self._respond(ex, *wire.deployment_not_found())
            return
        api_version = ex.query["api-version"]
        if op == "images/generations":
            await self._image_generation(ex, deployment, api_version)
            return
        if op == "embeddings":
            await self._embeddings(ex, deployment, api_version)
            return
        if op.startswith("audio/"):
            await self._audio(ex, deployment, op)
            return
        if deployment.type not in ("chat", "completion") or (
            op == "chat/completions" and deployment.type != "chat"
        ):
            operation = "chatCompletion" if op == "chat/completions" else "completion"
            await self._respond(ex, *_operation_not_supported(operation, deployment.model))
            return
        if deployment.responses_only:
            operation = "chatCompletion" if op == "chat/completions" else "completion"
            await self._respond(ex, *_operation_not_supported(operation, deployment.model))
            return
        kind = "chat" if op == "chat/completions" else "completion"
        await self._generate(ex, deployment, api_version, kind=kind, azure=True)

    async def _v1_chat(self, ex):
        if problem := self._authorized(ex, key_as_bearer=True):
            await self._respond(ex, *problem)
            return
        body = ex.json() or {}
        name = body.get("model")
        ex.entry["deployment"] = name
        deployment = self.config.deployments.get(name) if isinstance(name, str) else None
        if deployment is None or deployment.type != "chat":
            await self._respond(ex, *wire.deployment_not_found())
            return
        if deployment.responses_only:
            await self._respond(ex, *_operation_not_supported("chatCompletion", deployment.model))
            return
        await self._generate(ex, deployment, None, kind="chat", azure=True)

    async def _v1_responses(self, ex):
        """The Responses API. The GA v1 surface takes no api-version (``preview`` and
        ``latest`` are still accepted); a dated one is refused, as Azure does."""
        version = ex.query.get("api-version")
        if version is not None and version not in ("preview", "latest"):
            await self._respond(ex, *wire.v1_api_version_refused())
            return
        if problem := self._authorized(ex, key_as_bearer=True):
            await self._respond(ex, *problem)
            return
        body = ex.json()
        if not isinstance(body, dict):
            await self._respond(ex, *wire.invalid_request("The request body must be a JSON object."))
            return
        name = body.get("model")
        ex.entry["deployment"] = name
        deployment = self.config.deployments.get(name) if isinstance(name, str) else None
        if deployment is None or deployment.type != "chat":
            await self._respond(ex, *wire.deployment_not_found())
            return
        request = engine.responses_request(body, deployment=deployment)
        if not request.problem and (problem := _responses_json_mode_problem(body)):
            request.problem = ("text.format", problem)
        if request.problem:
            await self._respond(ex, *wire.invalid_request(request.problem[1], param=request.problem[0]))
            return
        fault = self._fault(request.markers, deployment, "v1")
        if fault:
            status, fault_body, headers = fault
            await self._respond(ex, status, fault_body, headers, deployment)
            return
        if marker := engine.find(request.markers, "filter_prompt"):
            await self._respond(ex, *wire.prompt_filtered(marker.args.get("category", "violence"),
                                                          marker.args.get("severity", "high")))
            return
        prompt_tokens = request.prompt_tokens(count_messages, count_text)
        if prompt_tokens > deployment.context_window:
            await self._respond(ex, *wire.context_length_exceeded(deployment.context_window, prompt_tokens))
            return
        plan = engine.plan_reply(request, prompt_tokens=prompt_tokens)

        def count(text):
            return count_text(text, deployment.model)

        if body.get("stream"):
            await engine.stream_responses_reply(
                ex, request, plan, body=body, headers=self._headers(deployment),
                prompt_tokens=prompt_tokens, count=count,
            )
            return
        if not await ex.pause(engine.delays(request)[0]):
            return
        data = engine.full_responses_body(request, plan, body=body, prompt_tokens=prompt_tokens,
                                          count=count)
        await self._respond(ex, 200, data, deployment=deployment)

    async def _serverless_chat(self, ex):
        if problem := self._authorized(ex, key_as_bearer=True):
            await self._respond(ex, *problem)
            return
        ex.entry["deployment"] = "serverless"
        from .config import Deployment

        deployment = Deployment(name="serverless", model=self.config.serverless_model)
        await self._generate(ex, deployment, None, kind="chat", azure=False)

    async def _generate(self, ex, deployment, api_version, *, kind, azure):
        body = ex.json()
        if not isinstance(body, dict):
            await self._respond(ex, *wire.invalid_request("The request body must be a JSON object."))
            return
        request = engine.ReplyRequest.from_body(body, kind=kind, deployment=deployment)
        if request.problem:
            await self._respond(ex, *wire.invalid_request(request.problem[1], param=request.problem[0]))
            return
        if body.get("stream_options") is not None:
            if not self.config.allows_stream_options(api_version):
                await self._respond(ex, *wire.invalid_request(
                    "Unrecognized request argument supplied: stream_options"))
                return
            if not body.get("stream"):
                await self._respond(ex, *wire.invalid_request(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options"))
                return
        if (problem := _json_mode_problem(body)):
            await self._respond(ex, *wire.invalid_request(problem, param="messages"))
            return
        fault = self._fault(request.markers, deployment, api_version or "v1")
        if fault:
            status, fault_body, headers = fault
            await self._respond(ex, status, fault_body, headers, deployment)
            return
        if marker := engine.find(request.markers, "filter_prompt"):
            category = marker.args.get("category", "violence")
            severity = marker.args.get("severity", "high")
            await self._respond(ex, *wire.prompt_filtered(category, severity))
            return
        prompt_tokens = request.prompt_tokens(count_messages, count_text)
        if prompt_tokens > deployment.context_window:
            await self._respond(ex, *wire.context_length_exceeded(deployment.context_window, prompt_tokens))
            return
        plan = engine.plan_reply(request, prompt_tokens=prompt_tokens)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await engine.stream_reply(
                ex, request, plan, headers=self._headers(deployment), azure=azure,
                include_usage=include_usage, prompt_tokens=prompt_tokens,
                completion_tokens=lambda text: count_text(text, deployment.model),
            )
        else:
            delay = engine.delays(request)
            if not await ex.pause(delay[0]):
                return
            data = engine.full_response(request, plan, azure=azure, prompt_tokens=prompt_tokens,
                                        completion_tokens=count_text(plan.text, deployment.model))
            await self._respond(ex, 200, data, deployment=deployment)

    # ----------------------------------------------------------------- embeddings
    async def _embeddings(self, ex, deployment, api_version):
        if deployment.type != "embedding":
            await self._respond(ex, *_operation_not_supported("embeddings", deployment.model))
            return
        body = ex.json()
        if not isinstance(body, dict):
            await self._respond(ex, *wire.invalid_request("The request body must be a JSON object."))
            return
        texts = [t for t in ([body.get("input")] if isinstance(body.get("input"), str) else body.get("input") or [])
                 if isinstance(t, str)]
        fault = self._fault(engine.parse_markers(" ".join(texts)), deployment, api_version)
        if fault:
            status, fault_body, headers = fault
            await self._respond(ex, status, fault_body, headers, deployment)
            return
        status, data = embeddings.answer(body, deployment, lambda text: count_text(text, deployment.model))
        await self._respond(ex, status, data, deployment=deployment)

    # ----------------------------------------------------------------- audio
    async def _audio(self, ex, deployment, op):
        kind = "transcription" if op == "audio/transcriptions" else "speech"
        if deployment.type != kind:
            name = "audioTranscription" if kind == "transcription" else "audioSpeech"
            await self._respond(ex, *_operation_not_supported(name, deployment.model))
            return
        if kind == "speech":
            body = ex.json()
            status, data, content_type = audio.speech(body if isinstance(body, dict) else {})
        else:
            status, data, content_type = audio.transcription(ex.headers.get("content-type", ""), ex.body)
        if status != 200 or content_type == "application/json":
            await self._respond(ex, status, data, deployment=deployment)
            return
        payload = data.encode() if isinstance(data, str) else data
        await ex.respond(200, payload, self._headers(deployment), content_type=content_type)

    # ----------------------------------------------------------------- images
    async def _image_generation(self, ex, deployment, api_version):
        if deployment.type != "image":
            await self._respond(ex, *_operation_not_supported("imagesGenerate", deployment.model))
            return
        body = ex.json()
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            await self._respond(ex, *wire.invalid_request("'prompt' is a required property", param="prompt"))
            return
        prompt = body["prompt"]
        markers = engine.parse_markers(prompt)
        fault = self._fault(markers, deployment, api_version)
        if fault:
            status, fault_body, headers = fault
            await self._respond(ex, status, fault_body, headers, deployment)
            return
        gpt_image = "gpt-image" in deployment.model or "gpt-image" in deployment.name
        problem = (engine.check_gpt_image if gpt_image else engine.check_dalle3)(body)
        if problem:
            await self._respond(ex, *wire.invalid_request(problem[1], param=problem[0], code=problem[2]))
            return
        if blocked := engine.image_block(prompt, markers):
            await self._respond(ex, *wire.image_policy_violation(*blocked))
            return
        clean = engine.strip_markers(prompt)
        size = body.get("size") or "1024x1024"
        created = int(time.time())
        if gpt_image:
            n = int(body.get("n") or 1)
            data = [{"b64_json": engine.b64_png(f"{clean} #{i}" if i else clean, size)} for i in range(n)]
            usage = {"input_tokens": count_text(clean, "gpt-image-1"), "output_tokens": 272 * n,
                     "total_tokens": count_text(clean, "gpt-image-1") + 272 * n}
            await self._respond(ex, 200, {"created": created, "data": data, "usage": usage},
                                deployment=deployment)
            return
        revised = engine.revised_prompt(clean)
        item = {
            "content_filter_results": wire.severity_results(),
            "prompt_filter_results": {**wire.severity_results(),
                                      "jailbreak": {"detected": False, "filtered": False},
                                      "profanity": {"detected": False, "filtered": False}},
            "revised_prompt": revised,
        }
        if body.get("response_format") == "b64_json":
            item["b64_json"] = engine.b64_png(revised, size)
        else:
            item["url"] = self._image_url(ex, revised, size)
        await self._respond(ex, 200, {"created": created, "data": [item]}, deployment=deployment)

    def _image_url(self, ex, prompt, size):
        token, _ = images.sign_image(self.image_secret, prompt=prompt, size=size,
                                     ttl=self.config.image_url_ttl)
        return f"{ex.base_url}/_sim/images/{token}.png"

    async def _image_file(self, ex, token):
        found = images.verify_image(self.image_secret, token)
        if found is None:
            await ex.respond(404, {"error": {"code": "BlobNotFound",
                                             "message": "The specified blob does not exist."}})
            return
        prompt, size = found
        await ex.respond(200, images.render_png(prompt, size), content_type="image/png")

    async def _dalle2_submit(self, ex):
        if await self._refused(ex):
            return
        deployment = next((d for d in self.config.deployments.values() if d.type == "dalle2"), None)
        ex.entry["deployment"] = deployment.name if deployment else None
        if deployment is None:
            await self._respond(ex, *wire.deployment_not_found())
            return
        body = ex.json()
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            await self._respond(ex, *wire.invalid_request("'prompt' is a required property", param="prompt"))
            return
        if problem := engine.check_dalle2(body):
            await self._respond(ex, *wire.invalid_request(problem[1], param=problem[0], code=problem[2]))
            return
        markers = engine.parse_markers(body["prompt"])
        operation_id = str(uuid.uuid4())
        self.operations[operation_id] = {
            "id": operation_id,
            "created": int(time.time()),
            "polls": 0,
            "prompt": engine.strip_markers(body["prompt"]),
            "size": body.get("size") or "1024x1024",
            "n": int(body.get("n") or 1),
            "blocked": engine.image_block(body["prompt"], markers) is not None,
        }
        while len(self.operations) > 1000:
            self.operations.popitem(last=False)
        location = (f"{ex.base_url}/openai/operations/images/{operation_id}"
                    f"?api-version={ex.query['api-version']}")
        await self._respond(ex, 202, {"id": operation_id, "status": "notRunning"},
                            [("operation-location", location), ("retry-after", "1")])

    async def _dalle2_poll(self, ex, operation_id):
        if await self._refused(ex):
            return
        op = self.operations.get(operation_id)
        if op is None:
            await self._respond(ex, 404, {"error": {"code": "NotFound",
                                                    "message": "The requested operation was not found."}})
            return
        op["polls"] += 1
        answer = {"created": op["created"], "id": op["id"]}
        if op["polls"] <= self.config.dalle2_polls:
            answer["status"] = "notRunning" if op["polls"] == 1 else "running"
        elif op["blocked"]:
            answer["status"] = "failed"
            answer["error"] = {"code": "contentFilter",
                               "message": "Your task failed as a result of our safety system."}
        else:
            answer["status"] = "succeeded"
            answer["expires"] = op["created"] + 86400
            answer["result"] = {
                "created": op["created"],
                "data": [{"url": self._image_url(ex, f"{op['prompt']} #{i}" if i else op["prompt"],
                                                 op["size"])} for i in range(op["n"])],
            }
        await self._respond(ex, 200, answer)

    # ----------------------------------------------------------------- identity
    async def _identity(self, ex):
        if not secrets.compare_digest(ex.headers.get("x-identity-header", ""), self.config.identity_header):
            await ex.respond(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."})
            return
        resource = ex.query.get("resource")
        if ex.query.get("api-version") != IDENTITY_API_VERSION or not resource:
            await ex.respond(400, {"statusCode": 400,
                                   "message": "api-version=2019-08-01 and resource are required."})
            return
        lifetime = self.config.token_lifetime
        if "sim_lifetime" in ex.query:  # tests ask for short-lived or already expired tokens
            lifetime = int(ex.query["sim_lifetime"])
        now = time.time()
        self.tokens = {t: v for t, v in self.tokens.items() if v[0] > now - 3600}
        token = "sim-entra." + secrets.token_urlsafe(32)
        expires_on = int(now + lifetime)
        self.tokens[token] = (expires_on, resource)
        await ex.respond(200, {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-00000000c11d",
        })

    # ----------------------------------------------------------------- control
    async def _control(self, ex):
        if ex.path == "/_sim/requests" and ex.method == "GET":
            wanted = ex.query.get("deployment")
            entries = [e for e in self.log if wanted is None or e["deployment"] == wanted]
            await ex.respond(200, entries)
        elif ex.path == "/_sim/reset" and ex.method == "POST":
            self.log.clear()
            self.counters.clear()
            self.rate_windows.clear()
            await ex.respond(200, {"ok": True})
        elif ex.path == "/_sim/health":
            await ex.respond(200, {"ok": True, "deployments": sorted(self.config.deployments)})
        else:
            await ex.respond(404, {"error": {"code": "404", "message": "Resource not found"}})


def _responses_json_mode_problem(body):
    """The Responses API's 400 for ``text.format`` ``json_object`` when no input says JSON."""
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(text_format, dict) or text_format.get("type") != "json_object":
        return None
    said = json.dumps([body.get("instructions") or "", body.get("input") or ""], ensure_ascii=False)
    if "json" in said.lower():
        return None
    return ("Response input messages must contain the word 'json' in some form to use "
            "'text.format' of type 'json_object'.")


def _json_mode_problem(body):
    """Azure's (and OpenAI's) 400 for ``response_format: json_object`` when no message says JSON."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_object":
        return None
    text = json.dumps(body.get("messages") or body.get("prompt") or "", ensure_ascii=False)
    if "json" in text.lower():
        return None
    return ("'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'.")


def _retry_headers(seconds):
    return [("retry-after", str(max(0, math.ceil(seconds)))),
            ("retry-after-ms", str(max(0, int(seconds * 1000))))]


def _operation_not_supported(operation, model):
    return 400, wire.error_body(
        "OperationNotSupported",
        f"The {operation} operation does not work with the specified model, {model}. "
        "Please choose different model and try again. You can learn more about which models "
        "can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
    )


def create_app(config=None):
    """The simulator ASGI app for ``config`` (SimConfig, a YAML-shaped mapping, or None)."""
    if config is None:
        config = load_config()
    elif not isinstance(config, SimConfig):
        config = build_config(config)
    return Simulator(config)


def fingerprint(model):
    return "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]
