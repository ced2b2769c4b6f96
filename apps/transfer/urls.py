from django.urls import path

from apps.transfer import views

app_name = "transfer"

urlpatterns = [
    path("transfer/", views.import_page, name="page"),
    path("transfer/export.zip", views.export_all, name="export-all"),
    path("c/<uuid:conversation_id>/export.json", views.export_json, name="export-json"),
    path("c/<uuid:conversation_id>/export.md", views.export_markdown, name="export-markdown"),
]
