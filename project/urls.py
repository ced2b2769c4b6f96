from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from project.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    ),
    path("", include("apps.accounts.urls")),
    path("", include("apps.azure.urls")),
    path("", include("apps.chat.urls")),
    path("", include("apps.sharing.urls")),
    path("", include("apps.transfer.urls")),
    path("", include("apps.gateway.urls")),
    path("", include("apps.gateway.page_urls")),
    path("admin/", admin.site.urls),
    path("media/", include("apps.media.urls")),
    path("", include("apps.observability.urls")),
]
