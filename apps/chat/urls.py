from django.urls import path

from apps.chat import views, views_library

app_name = "chat"
urlpatterns = [
    path("c/<uuid:conversation_id>/", views.chat_page, name="conversation"),
    path("api/chat/conversations/", views.conversation_list, name="api-conversations"),
    path("api/chat/search", views_library.search_view, name="api-search"),
    path("api/chat/folders/", views_library.folders, name="api-folders"),
    path(
        "api/chat/folders/<uuid:folder_id>/rename", views_library.folder_rename,
        name="api-folder-rename",
    ),
    path(
        "api/chat/folders/<uuid:folder_id>/delete", views_library.folder_delete,
        name="api-folder-delete",
    ),
    path("api/chat/conversations/bulk", views_library.bulk, name="api-bulk"),
    path(
        "api/chat/conversations/<uuid:conversation_id>/folder", views_library.move,
        name="api-move",
    ),
    path("api/chat/conversations/<uuid:conversation_id>/pin", views_library.pin, name="api-pin"),
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
