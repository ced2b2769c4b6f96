from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.azure.selectors import model_notices, models_for_user


def model_list(request):
    """Read-only list of the models the signed-in user can use (login required by middleware)."""
    return render(request, "azure/models.html", models_for_user(user=request.user))


@require_GET
def model_health(request):
    """GET: ``{"notices": {model key: sentence}}`` for the user's models that are rate-limited
    or failing right now (polled by static/js/health.js for the banner)."""
    response = JsonResponse({
        "notices": model_notices(user=request.user),
        "poll_ms": settings.HEALTH_POLL_SECONDS * 1000,
    })
    response["Cache-Control"] = "no-store"
    return response
