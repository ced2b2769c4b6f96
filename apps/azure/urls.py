from django.urls import path

from apps.azure import views

urlpatterns = [
    path("models/", views.model_list, name="models"),
    path("models/health/", views.model_health, name="model_health"),
]
