"""Azure OpenAI's shapes on the wire: error bodies, filter results, chunks and responses.

Every JSON body is serialised like Azure does it: compact, keys sorted (see azure-wire.md).
"""

import json

CATEGORIES = ("hate", "self_harm", "sexual", "violence")

BAD_KEY_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
BAD_TOKEN_MESSAGE = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)


def dumps(data):
    """Compact JSON in the key order the dicts were built in (Azure's order, see below)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def ordered(data):
    """Azure sorts the keys of chunks, choices and deltas; nested filter objects are not sorted
    (``{"prompt_index", "content_filter_results"}``, ``{"filtered", "detected"}``)."""
    return dict(sorted(data.items()))


def severity_results(*, category=None, severity="safe", filtered=False, jailbreak=False):
    results = {name: {"filtered": False, "severity": "safe"} for name in CATEGORIES}
    if category:
        results[category] = {"filtered": filtered, "severity": severity}
    if jailbreak:
        results["jailbreak"] = {"filtered": False, "detected": False}
    return ordered(results)


def filter_error():
    """``content_filter_results`` when the filter could not run (Azure sends this on a 200)."""
    return {"error": {"code": "content_filter_error", "message": "The contents are not filtered"}}


def prompt_filter_results(*, category=None, severity="safe", filtered=False):
    results = severity_results(category=category, severity=severity, filtered=filtered,
                               jailbreak=True)
    return [{"prompt_index": 0, "content_filter_results": results}]


def error_body(code, message, *, param=None, type_=None, status=None, **extra):
    error = {"code": code, "message": message}
    if param is not None or type_ is not None:
        error["param"] = param
    if type_ is not None:
        error["type"] = type_
    if status is not None:
        error["status"] = status
    error.update(extra)
    return {"error": error}


def resource_not_found():
    return 404, {"error": {"code": "404", "message": "Resource not found"}}


def deployment_not_found():
    return 404, error_body(
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    )


def bad_key():
    return 401, {"error": {"code": "401", "message": BAD_KEY_MESSAGE}}


def bad_token():
    return 401, {"error": {"code": "401", "message": BAD_TOKEN_MESSAGE}}


def rate_limited(api_version, seconds):
    seconds = max(0, round(seconds))
    message = (
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        f"{api_version} have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        f"Please retry after {seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease "
        f"if you would like to further increase the default rate limit."
    )
    return 429, {"error": {"code": "429", "message": message}}


def server_error(status):
    message = (
        "The server had an error while processing your request. Sorry about that!"
        if status == 500
        else "The service is temporarily unable to process your request. Please try again later."
    )
    return status, error_body(None, message, param=None, type_="server_error")


def invalid_request(message, *, param=None, code=None):
    return 400, error_body(code, message, param=param, type_="invalid_request_error")


def prompt_filtered(category, severity):
    results = severity_results(category=category, severity=severity, filtered=True,
                               jailbreak=True)
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry. To learn more about our content "
        "filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
    )
    return 400, error_body(
        "content_filter",
        message,
        param="prompt",
        type_=None,
        status=400,
        innererror={"code": "ResponsibleAIPolicyViolation", "content_filter_result": results},
    )


def image_policy_violation(category="violence", severity="high"):
    results = severity_results(category=category, severity=severity, filtered=True,
                               jailbreak=True)
    message = (
        "Your request was rejected as a result of our safety system. Your prompt may contain "
        "text that is not allowed by our safety system."
    )
    return 400, {
        "error": {
            "code": "content_policy_violation",
            "inner_error": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_results": results,
            },
            "message": message,
            "type": "invalid_request_error",
        }
    }


def context_length_exceeded(window, prompt_tokens):
    return 400, error_body(
        "context_length_exceeded",
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
        param="messages",
        type_="invalid_request_error",
    )


def usage(prompt_tokens, completion_tokens):
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class ChunkMaker:
    """Builds the chunks of one stream; ``usage_key`` adds ``"usage": null`` to every chunk."""

    def __init__(self, *, id, model, created, fingerprint, object="chat.completion.chunk",
                 usage_key=False, azure=True):
        self.base = {
            "id": id,
            "model": model,
            "created": created,
            "object": object,
            "system_fingerprint": fingerprint,
        }
        if usage_key:
            self.base["usage"] = None
        self.azure = azure
        self.text_mode = object == "text_completion"

    def _choice(self, **fields):
        choice = {"index": 0, "finish_reason": None, "logprobs": None, **fields}
        if not self.azure:
            choice.pop("content_filter_results", None)
        return ordered({**self.base, "choices": [ordered(choice)]})

    def annotation(self):
        return {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": prompt_filter_results(),
        }

    def role(self):
        return self._choice(
            content_filter_results={},
            delta={"content": "", "refusal": None, "role": "assistant"},
        )

    def content(self, text, filter_results=None):
        filters = filter_results or severity_results()
        if self.text_mode:
            return self._choice(content_filter_results=filters, text=text)
        return self._choice(content_filter_results=filters, delta={"content": text})

    def tool_call_start(self, call_id, name):
        call = {"index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}
        return self._choice(content_filter_results={}, delta={"tool_calls": [call]})

    def tool_call_args(self, piece):
        call = {"index": 0, "function": {"arguments": piece}}
        return self._choice(content_filter_results={}, delta={"tool_calls": [call]})

    def finish(self, reason, filter_results=None, *, in_delta=False):
        if self.text_mode:
            return self._choice(
                content_filter_results=filter_results or {}, text="", finish_reason=reason
            )
        if in_delta:  # some OpenAI-compatible servers: the reason inside the delta only
            return self._choice(
                content_filter_results=filter_results or {}, delta={"finish_reason": reason}
            )
        return self._choice(
            content_filter_results=filter_results or {}, delta={}, finish_reason=reason
        )

    def async_annotation(self, start, end):
        choice = {
            "index": 0,
            "finish_reason": None,
            "content_filter_results": severity_results(),
            "content_filter_offsets": {
                "check_offset": start,
                "start_offset": start,
                "end_offset": end,
            },
        }
        return ordered({**self.base, "choices": [ordered(choice)]})

    def usage_chunk(self, prompt_tokens, completion_tokens):
        return ordered({**self.base, "choices": [], "usage": usage(prompt_tokens, completion_tokens)})


def sse(data):
    return b"data: " + dumps(data).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


# ----------------------------------------------------------------- Responses API


class ResponsesEvents:
    """The events of one Responses stream (``POST /openai/v1/responses``), numbered by
    ``sequence_number`` in the order they are made; ``sse(event)`` writes each as
    ``event: <type>`` plus its JSON ``data`` (the stream has no ``[DONE]``)."""

    def __init__(self, *, id, model, created, request):
        self.id = id
        self.model = model
        self.created = created
        self.request = request  # the request's body fields echoed in the response object
        self.seq = 0

    def response(self, status, *, output=(), usage=None, error=None, incomplete=None):
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.request.get("instructions"),
            "max_output_tokens": self.request.get("max_output_tokens"),
            "model": self.model,
            "output": list(output),
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": self.request.get("reasoning") or {"effort": None, "summary": None},
            "store": self.request.get("store", True),
            "temperature": self.request.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": self.request.get("tool_choice", "auto"),
            "tools": self.request.get("tools") or [],
            "top_p": self.request.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    def event(self, type_, **fields):
        event = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event


def responses_usage(input_tokens, output_tokens, reasoning_tokens):
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def typed_sse(event):
    return b"event: " + event["type"].encode() + b"\ndata: " + dumps(event).encode() + b"\n\n"


def v1_api_version_refused():
    return 400, error_body("BadRequest", "API version not supported")
