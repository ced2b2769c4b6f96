from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.shortcuts import redirect

from apps.accounts.first_run import setup_needed

OPEN_PREFIXES = ("/setup/", "/static/", "/healthz", "/favicon.ico")


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
