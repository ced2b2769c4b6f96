from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "apps.observability"
    label = "observability"
    verbose_name = "Metrics and tracing"

    def ready(self):
        from django.core import checks

        from apps.observability import tracing
        from apps.observability.checks import check_observability

        checks.register(check_observability)
        # Imports OpenTelemetry only when the OTEL_* variables ask for traces.
        tracing.configure_from_environment()
