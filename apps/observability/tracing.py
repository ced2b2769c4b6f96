"""OpenTelemetry traces: a span per answer, the Azure stream as its child, Django's requests.

Off unless the standard variables ask for it (``wanted``): ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over HTTP/protobuf), or ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``; ``none`` or ``OTEL_SDK_DISABLED=true`` keep it off). The exporter reads
the rest of the ``OTEL_*`` variables itself (headers, timeout, compression, service name and
resource attributes). Off, this module imports nothing of OpenTelemetry and every function
returns at its first line.

What a span carries: the model key, group and deployment, the message id, the final status and
error code, the HTTP status of the Azure response and the number of retries. Never a message's
text, a prompt, a key or a header; Django's request spans lose their query string (an OIDC
callback's ``code`` and ``state`` are in it).
"""

import logging
import os

logger = logging.getLogger("lapis.observability")

EXPORTERS = ("otlp", "console", "none")
HTTP_PROTOCOL = "http/protobuf"
_state = {"tracer": None, "provider": None}


def _truthy(value):
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def exporter_names(environ=os.environ):
    """The exporters the environment asks for (``OTEL_TRACES_EXPORTER``, comma-separated;
    "otlp" when only an OTLP endpoint is set); empty when tracing is off."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return []
    named = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if named:
        return [] if named == ["none"] else [n for n in named if n != "none"]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if endpoint else []


def wanted(environ=os.environ):
    return bool(exporter_names(environ))


def otlp_protocol(environ=os.environ):
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or HTTP_PROTOCOL
    ).strip().lower()


def configure_from_environment(environ=os.environ):
    """Set up tracing in this process if the environment asks for it (AppConfig.ready); once.

    Problems with the variables are system checks (apps.observability.checks); an exporter
    this function cannot build is skipped with a log line, never a failed start.
    """
    if _state["tracer"] is not None or not wanted(environ):
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    processors = []
    for name in exporter_names(environ):
        if name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp" and otlp_protocol(environ) == HTTP_PROTOCOL:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            logger.error("tracing: exporter %r (protocol %s) is not supported; skipped", name, otlp_protocol(environ))
    if processors:
        provider = configure(processors, environ=environ)
        _instrument_django(provider)


def configure(processors, *, environ=os.environ, make_global=True):
    """Trace through ``processors`` (span processors) from now on; returns the TracerProvider.

    ``make_global`` also makes it OpenTelemetry's global provider (which can be set once per
    process): Django's instrumentation and other libraries use that one. Tests pass False.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "lapis"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in processors:
        provider.add_span_processor(processor)
    if make_global:
        trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("lapis")
    return provider


def reset():
    """Tracing off again in this process (tests); the old provider is shut down."""
    provider = _state["provider"]
    _state["tracer"] = _state["provider"] = None
    if provider is not None:
        provider.shutdown()


def _instrument_django(provider):
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    # Probes and scrapes make no useful traces (the operator's own list wins).
    os.environ.setdefault("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "healthz,metrics")
    DjangoInstrumentor().instrument(tracer_provider=provider, request_hook=_without_query)


# Attributes of a request span that may hold the query string (old and new HTTP conventions).
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")


def _without_query(span, request):
    """Django request hook: the span keeps the path, never the query string."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def start_answer(*, message_id, labels, start_ns):
    """The span of one answer (None when tracing is off), made current in the calling task so
    the Azure call's span (``start_upstream``) becomes its child. The caller must be the
    answer's own task (apps.chat.generation.Generation.run): the context is never detached,
    and goes with the task."""
    tracer = _state["tracer"]
    if tracer is None:
        return None
    from opentelemetry import context, trace

    model, group, deployment = labels
    span = tracer.start_span(
        "lapis.answer",
        start_time=start_ns,
        attributes={
            "lapis.message_id": str(message_id),
            "lapis.model": model,
            "lapis.group": group,
            "lapis.deployment": deployment,
        },
    )
    context.attach(trace.set_span_in_context(span))
    return span


def end_answer(span, *, status, error_code=None, failed=False):
    """End the answer's span with its final ``status`` (and error code when it failed)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("lapis.status", status)
    if error_code:
        span.set_attribute("error.type", error_code)
    if failed:
        span.set_status(Status(StatusCode.ERROR, error_code or status))
    span.end()


def start_upstream(labels):
    """The span of one streamed Azure request (None when off); child of the current answer."""
    tracer = _state["tracer"]
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    model, group, deployment = labels
    return tracer.start_span(
        "azure.stream",
        kind=SpanKind.CLIENT,
        attributes={"lapis.model": model, "lapis.group": group, "lapis.deployment": deployment},
    )


def end_upstream(span, *, status=None, retries=0, error_code=None):
    from opentelemetry.trace import Status, StatusCode

    if status is not None:
        span.set_attribute("http.response.status_code", status)
    span.set_attribute("lapis.retries", retries)
    if error_code:
        span.set_attribute("error.type", error_code)
        span.set_status(Status(StatusCode.ERROR, error_code))
    span.end()
