from django.urls import path

from apps.media import views

app_name = "media"

urlpatterns = [
    path("uploads/", views.upload, name="upload"),
    path("<uuid:pk>/", views.file, name="file"),
    path("<uuid:pk>/thumbnail/", views.thumbnail, name="thumbnail"),
]
