"""Audit entries for model-group configurations: loads, activations and rollbacks, each with the
unified diff of the YAML against the version active before, inline secrets masked as the admin's
preview masks them (a ``${VAR}`` reference stays readable)."""

import difflib

from apps.audit.services import Action, record

DIFF_CONTEXT = 3


def yaml_diff(*, old, new):
    """The unified diff from ``old`` (a ConfigVersion or None) to ``new``; secrets masked."""
    from apps.azure.admin import mask_inline_secrets  # the preview's masking, one rule for both

    before = mask_inline_secrets(old.text.split("\n")) if old is not None else []
    after = mask_inline_secrets(new.text.split("\n"))
    return "\n".join(
        difflib.unified_diff(
            before, after, lineterm="", n=DIFF_CONTEXT,
            fromfile=f"version {old.pk}" if old is not None else "(none active)",
            tofile=f"version {new.pk}",
        )
    )


def loaded(*, version, active, user):
    record(
        action=Action.CONFIG_LOAD, target=version, actor=user,
        summary=f"loaded config version {version.pk} ({version.get_source_display()})",
        diff=yaml_diff(old=active, new=version),
        changes={"checksum": version.checksum, "compared_with": getattr(active, "pk", None)},
    )


def activated(*, version, previous, user, rollback):
    verb = "rolled back to" if rollback else "activated"
    record(
        action=Action.CONFIG_ROLLBACK if rollback else Action.CONFIG_ACTIVATE, target=version, actor=user,
        summary=f"{verb} config version {version.pk}"
        + (f" (was version {previous.pk})" if previous is not None else ""),
        diff=yaml_diff(old=previous, new=version),
        changes={"active": [getattr(previous, "pk", None), version.pk]},
    )
