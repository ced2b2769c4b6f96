from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "apps.governance"
    label = "governance"
    verbose_name = "Limits and budgets"

    def ready(self):
        from django.core import checks

        from apps.governance import signals  # noqa: F401  (connects the receivers)
        from apps.governance.checks import check_limits

        checks.register(check_limits)
