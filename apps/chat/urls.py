from django.urls import path

from apps.chat import views

app_name = "chat"
urlpatterns = [
    path("c/<uuid:conversation_id>/", views.chat_page, name="conversation"),
    path("api/chat/conversations/", views.conversation_list, name="api-conversations"),
    path(
        "api/chat/conversations/<uuid:conversation_id>/",
        views.conversation_detail,
        name="api-conversation",
    ),
    path("api/chat/conversations/<uuid:conversation_id>/rename", views.rename, name="api-rename"),
    path("api/chat/conversations/<uuid:conversation_id>/archive", views.archive, name="api-archive"),
    path("api/chat/conversations/<uuid:conversation_id>/delete", views.delete, name="api-delete"),
    path(
        "api/chat/conversations/<uuid:conversation_id>/settings",
        views.update_settings,
        name="api-settings",
    ),
    path("api/chat/conversations/<uuid:conversation_id>/leaf", views.select_leaf, name="api-leaf"),
    path(
        "api/chat/conversations/<uuid:conversation_id>/context",
        views.context,
        name="api-context",
    ),
    path("api/chat/conversations/<uuid:conversation_id>/usage", views.usage, name="api-usage"),
]
