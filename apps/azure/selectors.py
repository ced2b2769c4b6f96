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


def model_notices(*, user):
    """``{model key: short sentence}`` for the models ``user`` may pick whose deployment is
    rate-limited or failing right now (the shared view of apps.azure.health: every process)."""
    from apps.azure import health

    models = get_registry().for_user(user).chat_models()
    deployments = [m for spec in models for m in (spec.members or (spec,))]
    shared = health.shared([health.key_of(spec) for spec in deployments])
    if not shared:
        return {}
    notices = {}
    for spec in models:
        members = spec.members or (spec,)
        unwell = [(m, shared[health.key_of(m)]["state"]) for m in members if health.key_of(m) in shared]
        if not unwell:
            continue
        well = [m for m in members if health.key_of(m) not in shared]
        if well:
            worst, state = unwell[0]
            notices[spec.key] = f"{worst.label} is {_STATE_WORDS[state]}; answers come from {well[0].label}."
        elif len(members) > 1:
            state = _worst(state for _, state in unwell)
            notices[spec.key] = f"{spec.label} is {_STATE_WORDS[state]} in every region; answers may be {_EFFECT[state]}."
        else:
            state = unwell[0][1]
            notices[spec.key] = f"{spec.label} is {_STATE_WORDS[state]}; answers may be {_EFFECT[state]}."
    return notices


_STATE_WORDS = {"rate_limited": "rate-limited", "failing": "failing right now"}
_EFFECT = {"rate_limited": "slow", "failing": "slow or fail"}


def _worst(states):
    states = set(states)
    return "failing" if "failing" in states else "rate_limited"
