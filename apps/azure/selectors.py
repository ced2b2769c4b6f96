"""Reads for model groups: what a user may pick, and config versions for the admin."""

from apps.azure.models import ConfigVersion
from apps.azure.registry import get_registry


def models_for_user(*, user):
    """``{"groups": [(name, [chat specs])], "images": [image specs]}`` in file order.

    Only the models the config's ``access`` rules give ``user`` (see apps.azure.access).
    """
    registry = get_registry().for_user(user)
    groups = []
    for name, specs in registry.groups():
        chat = [spec for spec in specs if spec.type != "image"]  # API-only models listed too
        if chat:
            groups.append((name, chat))
    return {"groups": groups, "images": registry.image_models(), "registry": registry}


def active_version():
    """The active ConfigVersion, or None before the first activation."""
    return ConfigVersion.objects.filter(is_active=True).first()


def versions():
    """Every stored version, newest first, with who created and activated it."""
    return ConfigVersion.objects.select_related("created_by", "activated_by").order_by("-id")
