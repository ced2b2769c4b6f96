"""The one-line hooks other apps call: an answer's life, one Azure stream, sockets.

Each hook feeds the metrics (when ``metrics.enabled()``) and the traces (when tracing is on)
and costs a few attribute reads when both are off. Nothing here raises into its caller's work
beyond what prometheus-client or OpenTelemetry might, and neither raises on these calls.
"""

import time

from apps.observability import metrics, tracing

# Statuses whose answer span is marked as failed (apps.chat.models.Message.Status values).
FAILED_STATUSES = frozenset({"error", "filtered", "interrupted"})


class AnswerWatch:
    """One answer, from ``Generation`` creation to its final state. Use: ``started(message)``
    once the message is read (in the answer's own task), ``first_text()`` at its first text,
    ``finished(status, error)`` once at the end (a no-op if ``started`` never ran)."""

    __slots__ = ("began", "began_ns", "labels", "counted", "span", "texted", "done")

    def __init__(self):
        self.began = time.monotonic()
        self.began_ns = time.time_ns()
        self.labels = None
        self.counted = False
        self.span = None
        self.texted = False
        self.done = False

    def started(self, message):
        self.labels = (message.model_key or "", message.group or "", message.deployment or "")
        if metrics.enabled():
            self.counted = True
            metrics.ANSWERS_STARTED.labels(*self.labels).inc()
            metrics.ANSWERS_ACTIVE.inc()
        self.span = tracing.start_answer(
            message_id=message.pk, labels=self.labels, start_ns=self.began_ns
        )

    def first_text(self):
        if self.texted or self.labels is None:
            return
        self.texted = True
        if self.counted:
            metrics.FIRST_TEXT.labels(*self.labels).observe(time.monotonic() - self.began)
        if self.span is not None:
            self.span.add_event("first_text")

    def finished(self, status, error=None):
        if self.done or self.labels is None:
            return
        self.done = True
        status = str(status)
        if self.counted:
            metrics.ANSWERS_ACTIVE.dec()
            metrics.ANSWERS_FINISHED.labels(*self.labels, status).inc()
            metrics.ANSWER_DURATION.labels(*self.labels).observe(time.monotonic() - self.began)
        if self.span is not None:
            code = (error or {}).get("code")
            tracing.end_answer(
                self.span, status=status, error_code=code, failed=status in FAILED_STATUSES
            )


class UpstreamWatch:
    """One streamed Azure request (apps.azure.client.stream_events): ``retry`` per retried
    error response, ``responded`` at the answer's headers, ``failed`` with the UpstreamError it
    ends with, ``end()`` always (in ``finally``)."""

    __slots__ = ("labels", "counted", "span", "status", "retries", "error")

    def __init__(self, model):
        self.labels = (model.key or "", model.group or "", model.deployment or "")
        self.counted = metrics.enabled()
        self.span = tracing.start_upstream(self.labels)
        self.status = None
        self.retries = 0
        self.error = None

    def retry(self, status, seconds):
        self.retries += 1
        self.status = status
        if self.counted:
            code = "429" if status == 429 else "5xx" if status >= 500 else str(status)
            metrics.UPSTREAM_ERRORS.labels(*self.labels, code).inc()
            metrics.RETRY_WAIT.labels(*self.labels, str(status)).observe(seconds)

    def responded(self, status):
        self.status = status

    def failed(self, exc):
        self.error = metrics.error_code(exc)
        if getattr(exc, "status", None):
            self.status = exc.status
        if self.counted:
            metrics.UPSTREAM_ERRORS.labels(*self.labels, self.error).inc()

    def end(self):
        if self.span is not None:
            span, self.span = self.span, None
            tracing.end_upstream(span, status=self.status, retries=self.retries, error_code=self.error)


def upstream_call(model):
    """An UpstreamWatch for one streamed request of ``model`` (a ModelSpec)."""
    return UpstreamWatch(model)


def socket_opened(consumer):
    """A chat socket was accepted (counted once per consumer)."""
    if metrics.enabled() and not getattr(consumer, "metrics_counted", False):
        consumer.metrics_counted = True
        metrics.SOCKETS_OPEN.inc()


def socket_closed(consumer):
    """A chat socket closed: uncounts it if ``socket_opened`` counted it."""
    if getattr(consumer, "metrics_counted", False):
        consumer.metrics_counted = False
        metrics.SOCKETS_OPEN.dec()
