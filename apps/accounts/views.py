from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_http_methods

from apps.accounts.first_run import setup_needed
from apps.accounts.forms import SetupForm, ThrottledAuthenticationForm


@login_not_required
@require_http_methods(["GET", "POST"])
def setup(request):
    """First run: create the admin account. Gone (404) once any user exists."""
    if not setup_needed():
        raise Http404("Lapis is already set up.")
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Lapis is yours.")
        return redirect("home")
    return render(request, "accounts/setup.html", {"form": form})


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "registration_open": settings.REGISTRATION_OPEN and settings.LOCAL_LOGIN,
            "local_login": settings.LOCAL_LOGIN,
            "oidc_enabled": settings.OIDC_ENABLED,
            "oidc_button_label": settings.OIDC_BUTTON_LABEL,
        }

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_LOGIN:
            return HttpResponseForbidden(
                "Password sign-in is turned off here (LOCAL_LOGIN=0): use the company sign-in."
            )
        return super().post(request, *args, **kwargs)


@login_not_required
@require_http_methods(["GET", "POST"])
def register(request):
    """Self-registration, only when REGISTRATION_OPEN is set."""
    if not settings.REGISTRATION_OPEN or not settings.LOCAL_LOGIN:
        raise Http404("Registration is closed; ask an admin for an account.")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "accounts/register.html", {"form": form})


def home(request):
    """The home page is the chat (a new conversation)."""
    from apps.chat.views import chat_page

    return chat_page(request)
