from django.urls import path, re_path

from apps.gateway import views

app_name = "gateway"
urlpatterns = [
    path("v1/models", views.models, name="models"),
    path("v1/models/<path:name>", views.model_detail, name="model"),
    path("v1/chat/completions", views.chat_completions, name="chat_completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/audio/speech", views.speech, name="speech"),
    path("v1/audio/transcriptions", views.transcriptions, name="transcriptions"),
    re_path(r"^v1/(?P<rest>.*)$", views.not_found, name="not_found"),
]
