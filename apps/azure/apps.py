from django.apps import AppConfig


class AzureConfig(AppConfig):
    name = "apps.azure"
    label = "azure"
    verbose_name = "Azure model groups"

    def ready(self):
        from django.core import checks

        from apps.azure import checks as azure_checks
        from apps.azure.signals import count_failover, upstream_failover
        from apps.azure.tokens import load_encodings
        from project.lifecycle import at_startup

        checks.register(azure_checks.check_config_path, "lapis", deploy=True)
        checks.register(azure_checks.check_config_allow_lists, "lapis")
        checks.register(azure_checks.check_entra_identity, "lapis")
        checks.register(azure_checks.check_secrets_keys, "lapis")
        checks.register(azure_checks.check_secrets_keys_deploy, "lapis", deploy=True)
        upstream_failover.connect(count_failover, dispatch_uid="lapis-failover-metric")
        at_startup(azure_checks.load_config_path_at_start)
        at_startup(load_encodings)
