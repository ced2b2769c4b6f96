from django.shortcuts import render

from apps.azure.selectors import models_for_user


def model_list(request):
    """Read-only list of the models the signed-in user can use (login required by middleware)."""
    return render(request, "azure/models.html", models_for_user(user=request.user))
