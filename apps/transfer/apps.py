from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "apps.transfer"
    label = "transfer"

    def ready(self):
        from apps.transfer import checks  # noqa: F401  (registers the system checks)
