"""Metrics and tracing settings that cannot work, as system checks."""

import os

from django.conf import settings
from django.core import checks

from apps.observability import metrics, tracing

MIN_TOKEN_LENGTH = 24


def check_observability(app_configs=None, **kwargs):
    problems = []
    if settings.METRICS_ADDRESS:
        try:
            metrics.parse_address(settings.METRICS_ADDRESS)
        except ValueError as exc:
            problems.append(checks.Error(
                f"METRICS_ADDRESS: {exc}.", hint="host:port, e.g. 0.0.0.0:9100 or [::]:9100.",
                id="lapis.E701",
            ))
    token = settings.METRICS_TOKEN
    if token and (len(token) < MIN_TOKEN_LENGTH or token != token.strip()):
        problems.append(checks.Error(
            f"METRICS_TOKEN is {len(token)} characters long or has spaces around it: a scraper "
            "token must be hard to guess.",
            hint=f"Use {MIN_TOKEN_LENGTH} or more random characters, e.g. `openssl rand -hex 24`.",
            id="lapis.E702",
        ))
    for name in tracing.exporter_names(os.environ):
        if name not in tracing.EXPORTERS:
            problems.append(checks.Error(
                f"OTEL_TRACES_EXPORTER names {name!r}, which Lapis does not ship.",
                hint="Use otlp (OTLP over HTTP/protobuf), console or none.", id="lapis.E703",
            ))
        elif name == "otlp" and tracing.otlp_protocol(os.environ) != tracing.HTTP_PROTOCOL:
            problems.append(checks.Error(
                f"OTLP protocol {tracing.otlp_protocol(os.environ)!r} is not supported: Lapis "
                "ships the HTTP/protobuf exporter; traces are not exported.",
                hint="Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and point "
                "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318).",
                id="lapis.E704",
            ))
    return problems
