"""OpenAI-shaped errors: ``{"error": {"message", "type", "code", "param"}}`` with the status
OpenAI uses, so SDKs raise the exception they would raise against OpenAI."""

import json
import math

from django.http import HttpResponse

TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An answer other than 200: ``status``, ``message`` (for the caller, never a secret),
    ``code``, ``type`` (from the status unless given), ``param``, extra ``headers``."""

    def __init__(self, status, message, *, code=None, type=None, param=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self):
        response = HttpResponse(
            json.dumps(self.body()), status=self.status, content_type="application/json"
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def retry_headers(seconds, *, retry=True):
    """``Retry-After`` (whole seconds, at least 1) and its millisecond form; ``retry=False`` tells
    the SDKs not to retry by themselves (a budget resets in hours)."""
    headers = {"Retry-After": str(max(1, math.ceil(seconds)))}
    if retry:
        headers["retry-after-ms"] = str(max(1, math.ceil(seconds * 1000)))
    else:
        headers["x-should-retry"] = "false"
    return headers


# Lapis's UpstreamError codes → (status, OpenAI code). Azure's own auth failing is Lapis's
# problem, not the caller's key: 502, never 401 (the caller would think its key is bad).
UPSTREAM = {
    "rate_limited": (429, "rate_limit_exceeded"),
    "content_filter_prompt": (400, "content_filter"),
    "content_filter_answer": (400, "content_filter"),
    "context_length_exceeded": (400, "context_length_exceeded"),
    "bad_request": (400, None),
    "deployment_not_found": (404, "model_not_found"),
    "auth_failed": (502, "upstream_auth_failed"),
    "upstream_unreachable": (502, "upstream_unreachable"),
    "upstream_stalled": (504, "upstream_stalled"),
    "upstream_broken": (502, "upstream_broken"),
    "upstream_redirect": (502, "upstream_redirect"),
    "upstream_protocol": (502, "upstream_protocol"),
    "upstream_error": (502, None),
}


def from_upstream(exc):
    """The ApiError for an ``apps.azure.errors.UpstreamError`` (its user message, no detail)."""
    status, code = UPSTREAM.get(exc.code, (502, None))
    headers = {}
    if status == 429:
        headers = retry_headers(exc.retry_after or 1)
    param = "messages" if exc.code == "content_filter_prompt" else None
    return ApiError(status, exc.message, code=code, param=param, headers=headers)
