"""The one exception the rest of Lapis sees from Azure: ``UpstreamError``.

``message`` is for the person chatting (no secret, no deployment detail); ``admin_detail`` is for
staff (names the group and deployment, never a key). ``code`` is one of ``CODES``.
"""

CODES = frozenset(
    {
        "rate_limited",
        "deployment_not_found",
        "auth_failed",
        "content_filter_prompt",
        "content_filter_answer",
        "context_length_exceeded",
        "bad_request",
        "upstream_unreachable",
        "upstream_stalled",
        "upstream_broken",  # the connection dropped (or the body broke off) mid-answer
        "upstream_redirect",  # a 3xx: Lapis follows no redirect from Azure
        "upstream_error",
        "upstream_protocol",
        "content_policy",
    }
)


def wait_phrase(seconds):
    """When to try again, for people: "in 58 seconds" (58.361 s), "in 1 second" (0.2 s),
    "in 3 minutes" (170 s), "in 2 hours" (7,300 s), "in a moment" (unknown)."""
    if seconds is None:
        return "in a moment"
    whole = max(1, round(seconds))
    if whole < 120:
        return f"in {whole} second{'' if whole == 1 else 's'}"
    minutes = round(whole / 60)
    if minutes < 120:
        return f"in {minutes} minutes"
    return f"in {round(minutes / 60):,} hours"


class UpstreamError(Exception):
    """A failed call to Azure OpenAI, described for users and for staff."""

    def __init__(
        self,
        code,
        message,
        *,
        admin_detail="",
        retry_after=None,
        status=None,
        filter_results=None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.admin_detail = admin_detail or message
        self.retry_after = retry_after
        self.status = status
        self.filter_results = filter_results

    def __repr__(self):
        return f"UpstreamError(code={self.code!r}, status={self.status!r}, message={self.message!r})"
