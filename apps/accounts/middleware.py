from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.shortcuts import redirect, render

from apps.accounts.first_run import setup_needed

OPEN_PREFIXES = ("/setup/", "/static/", "/healthz", "/metrics", "/favicon.ico", "/v1/")  # /v1/: API keys, JSON errors


class FirstRunMiddleware:
    """While no account exists, every page leads to the first-run page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(OPEN_PREFIXES) and setup_needed():
            return redirect("setup")
        return self.get_response(request)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every page needs a signed-in user unless its view is marked ``login_not_required``."""


class AdminForStaffOnlyMiddleware:
    """A signed-in non-staff user opening /admin/ gets a plain 403 page. Django's admin would send
    them to its login, which (already signed in) sends them back: an endless redirect."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            request.path.startswith("/admin/")
            and user is not None
            and user.is_authenticated
            and not (user.is_active and user.is_staff)
        ):
            return render(request, "accounts/admin_forbidden.html", status=403)
        return self.get_response(request)
