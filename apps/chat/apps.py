from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self):
        from django.core import checks
        from django.db.models.signals import post_migrate

        from apps.chat.checks import check_chat_settings
        from apps.chat.generation import finish_for_shutdown
        from apps.chat.search import after_migrate
        from apps.chat.temporary import sweep_at_startup
        from apps.chat.workers import sweep_interrupted
        from project.lifecycle import at_shutdown, at_startup

        checks.register(check_chat_settings)
        post_migrate.connect(after_migrate, sender=self)
        at_startup(sweep_interrupted)
        at_startup(sweep_at_startup)
        at_shutdown(finish_for_shutdown)
