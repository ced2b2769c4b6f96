"""``/metrics``: this process's Prometheus figures, for a scraper holding ``METRICS_TOKEN``."""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

BEARER = "bearer "


def token_matches(header, token):
    """Whether the ``Authorization`` header ``header`` is ``Bearer <token>``, compared in
    constant time (the length of the token aside, which a timing attacker may learn)."""
    if not header[: len(BEARER)].lower() == BEARER:
        return False
    given = header[len(BEARER):].strip().encode()
    return hmac.compare_digest(given, token.encode())


@login_not_required
@require_GET
def metrics(request):
    """404 unless ``METRICS_TOKEN`` is set (the figures are then only on METRICS_ADDRESS, or
    nowhere); 401 with ``WWW-Authenticate: Bearer`` without the right token; else the figures."""
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponseNotFound("Not found.", content_type="text/plain")
    if not token_matches(request.headers.get("Authorization", ""), token):
        response = HttpResponse(
            "Metrics need the bearer token (METRICS_TOKEN).\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="lapis-metrics"'
        return response
    response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
