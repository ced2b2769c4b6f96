from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self):
        from apps.chat.workers import sweep_interrupted
        from project.lifecycle import at_startup

        at_startup(sweep_interrupted)
