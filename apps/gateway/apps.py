from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The OpenAI-compatible API under /v1/ and the personal API keys that open it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.gateway"
    verbose_name = "API gateway"
