from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from django.core import checks

        from apps.accounts.checks import check_sign_in

        checks.register(check_sign_in)
        from apps.accounts.first_run import announce_setup_token
        from project.lifecycle import at_startup

        at_startup(announce_setup_token)
