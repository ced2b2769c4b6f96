"""The signed-in user's API keys page: create (the key shown once), list, revoke."""

from datetime import timedelta

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.gateway.forms import NewKeyForm
from apps.gateway.models import ApiKey
from apps.gateway.selectors import keys_of, may_use_keys
from apps.gateway.services import KeyRefused, create_key, revoke_key


@require_http_methods(["GET", "POST"])
def api_keys(request):
    allowed = may_use_keys(user=request.user)
    form = NewKeyForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if not allowed:
            status = 403
        elif form.is_valid():
            days = form.cleaned_data["expires_in"]
            expires = timezone.now() + timedelta(days=int(days)) if days else None
            try:
                created = create_key(user=request.user, name=form.cleaned_data["name"], expires=expires)
                form = NewKeyForm()
            except KeyRefused as exc:
                form.add_error("name", str(exc))
                status = 400
        else:
            status = 400
    context = {
        "allowed": allowed,
        "form": form,
        "keys": keys_of(user=request.user),
        "new_key": created[1] if created else None,
        "new_key_object": created[0] if created else None,
        "base_url": request.build_absolute_uri("/v1"),
        "now": timezone.now(),
    }
    response = render(request, "gateway/api_keys.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may carry a new key: never cached
    return response


@require_POST
def revoke(request, pk):
    key = ApiKey.objects.filter(pk=pk, user=request.user).first()  # only the owner's own keys
    if key is None:
        raise Http404("No such key.")
    revoke_key(key=key, by=request.user)
    messages.success(request, f"The key {key.prefix}… ({key.name}) is revoked.")
    return redirect("api_keys")
