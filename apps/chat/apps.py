from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self):
        from django.db.models.signals import post_migrate

        from apps.chat.generation import finish_for_shutdown
        from apps.chat.search import after_migrate
        from apps.chat.workers import sweep_interrupted
        from project.lifecycle import at_shutdown, at_startup

        post_migrate.connect(after_migrate, sender=self)
        at_startup(sweep_interrupted)
        at_shutdown(finish_for_shutdown)
