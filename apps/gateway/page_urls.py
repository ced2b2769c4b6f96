from django.urls import path

from apps.gateway import pages

urlpatterns = [
    path("settings/api-keys/", pages.api_keys, name="api_keys"),
    path("settings/api-keys/<int:pk>/revoke/", pages.revoke, name="api_key_revoke"),
]
