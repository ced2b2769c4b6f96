from django.apps import AppConfig


class AzureConfig(AppConfig):
    name = "apps.azure"
    label = "azure"
