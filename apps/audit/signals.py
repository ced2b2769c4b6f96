"""What writes audit entries without the code that acts knowing: sign-ins, user and group
changes, the admin-set limits and policies, and deletions done in the admin.

Config loads and activations are written by apps.azure.services (they need the previous
version's text for the diff); exports by the view that exports (``services.record_export``).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from apps.audit.services import Action, described, record

FLAGS = ("is_active", "is_staff", "is_superuser")
# Models whose every change is audited, with the action; their str() names whom they apply to.
WATCHED = {
    "governance.budget": Action.LIMITS_CHANGE,
    "governance.ratelimit": Action.LIMITS_CHANGE,
    "governance.retentionpolicy": Action.RETENTION_CHANGE,
    "azure.storedsecret": Action.KEY_CHANGE,
}
# Fields whose value never goes into the log, only that it changed (a stored key's token).
REDACTED = frozenset({"ciphertext"})
# Deleted in the admin: only the type and id are kept for these (their str() is a title or text).
CONTENT_MODELS = ("chat.", "media.")


def connect():
    from django.apps import apps

    User = get_user_model()
    user_logged_in.connect(on_signed_in, dispatch_uid="audit-signin")
    user_login_failed.connect(on_sign_in_failed, dispatch_uid="audit-signin-failed")
    pre_save.connect(on_user_pre_save, sender=User, dispatch_uid="audit-user-pre")
    post_save.connect(on_user_saved, sender=User, dispatch_uid="audit-user-post")
    post_delete.connect(on_user_deleted, sender=User, dispatch_uid="audit-user-del")
    m2m_changed.connect(on_groups_changed, sender=User.groups.through, dispatch_uid="audit-groups")
    pre_delete.connect(on_group_deleted, sender=Group, dispatch_uid="audit-group-del")
    for label in WATCHED:
        try:
            model = apps.get_model(label)
        except LookupError:  # an app that is not installed
            continue
        pre_save.connect(on_watched_pre_save, sender=model, dispatch_uid=f"audit-pre-{label}")
        post_save.connect(on_watched_saved, sender=model, dispatch_uid=f"audit-post-{label}")
        post_delete.connect(on_watched_deleted, sender=model, dispatch_uid=f"audit-del-{label}")
    _watch_admin_deletions()


# Sign-ins ------------------------------------------------------------------------------------


def _to_admin(request):
    """Whether a sign-in is for the admin (its form posts ``next=/admin/...``)."""
    if request is None:
        return False
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    return request.path.startswith("/admin/") or nxt.startswith("/admin/")


def _address(request):
    from apps.accounts.throttle import client_address

    return client_address(request) if request is not None else ""


def on_signed_in(sender, request, user, **kwargs):
    """A staff member's sign-in (whatever page it starts from) or any sign-in for the admin."""
    if not (user.is_staff or user.is_superuser or _to_admin(request)):
        return
    record(action=Action.SIGN_IN, summary=f"{user.get_username()} signed in", target=user,
           actor=user, address=_address(request))


def on_sign_in_failed(sender, credentials, request=None, **kwargs):
    """A failed sign-in for the admin, or for a staff account: the username as typed, never
    the password (Django has already replaced it in ``credentials``)."""
    User = get_user_model()
    typed = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")[:80]
    staff = typed and User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": typed}, is_staff=True).exists()
    if not (staff or _to_admin(request)):
        return
    record(action=Action.SIGN_IN_FAILED, summary=f"failed sign-in as {typed!r}",
           actor_name=typed or "(empty)", address=_address(request))


# Users and groups ----------------------------------------------------------------------------


def on_user_pre_save(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None or (update_fields and not set(FLAGS) & set(update_fields)):
        instance._audit_flags = None
        return
    instance._audit_flags = sender.objects.filter(pk=instance.pk).values(*FLAGS).first()


def on_user_saved(sender, instance, created=False, **kwargs):
    name = instance.get_username()
    if created:
        flags = {f: getattr(instance, f) for f in FLAGS}
        record(action=Action.USER_CREATE, summary=f"user {name} created", target=instance, changes={"flags": flags})
        return
    before = getattr(instance, "_audit_flags", None)
    if not before:
        return
    changes = {f: [before[f], getattr(instance, f)] for f in FLAGS if before[f] != getattr(instance, f)}
    if not changes:
        return
    if "is_active" in changes:
        action = Action.USER_REACTIVATE if instance.is_active else Action.USER_DEACTIVATE
    elif any(new for _old, new in (changes.get("is_staff", [0, 0]), changes.get("is_superuser", [0, 0]))):
        action = Action.USER_PROMOTE
    else:
        action = Action.USER_DEMOTE
    said = ", ".join(f"{f.removeprefix('is_')} {'on' if new else 'off'}" for f, (_old, new) in changes.items())
    record(action=action, summary=f"user {name}: {said}", target=instance, changes=changes)


def on_user_deleted(sender, instance, **kwargs):
    record(action=Action.USER_DELETE, summary=f"user {instance.get_username()} deleted",
           changes={"id": instance.pk})


def on_groups_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    """Users added to or removed from groups (either side of the relation)."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    User = get_user_model()
    verb = {"post_add": "added to", "post_remove": "removed from", "pre_clear": "removed from"}[action]
    if action == "pre_clear":
        others = list((instance.user_set if reverse else instance.groups).all())
    else:
        if not pk_set:
            return
        others = list(model.objects.filter(pk__in=pk_set))
    if not others:
        return
    if reverse:  # group.user_set.add(users)
        group, users = instance, others
    else:
        users, group = [instance], None
    for user in users:
        groups = [group] if group is not None else others
        names = sorted(g.name for g in groups if isinstance(g, Group))
        record(
            action=Action.GROUPS_CHANGE, target=user if isinstance(user, User) else None,
            summary=f"user {user.get_username()} {verb} {', '.join(names)}",
            changes={"added" if action == "post_add" else "removed": names},
        )


def on_group_deleted(sender, instance, **kwargs):
    """A deleted group takes its memberships along without m2m signals: name them here."""
    members = sorted(instance.user_set.values_list("username", flat=True))
    record(action=Action.GROUPS_CHANGE, summary=f"group {instance.name} deleted ({len(members)} member(s))",
           changes={"group": instance.name, "members": members})


# Limits, budgets and retention policies ------------------------------------------------------


def _values(instance):
    return {f.attname: _redacted(f.attname, getattr(instance, f.attname))
            for f in instance._meta.concrete_fields if not f.primary_key}


def _redacted(name, value):
    """A field's value as logged: a redacted one as a short digest, enough to see it changed."""
    if name in REDACTED and value:
        import hashlib

        return "(set, " + hashlib.sha256(str(value).encode()).hexdigest()[:8] + ")"
    return _plain(value)


def _plain(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def on_watched_pre_save(sender, instance, **kwargs):
    old = sender.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._audit_before = _values(old) if old is not None else None


def on_watched_saved(sender, instance, created=False, **kwargs):
    before, after = getattr(instance, "_audit_before", None), _values(instance)
    if before is None:
        changes = {name: [None, value] for name, value in after.items() if value is not None}
        verb = "added"
    else:
        changes = {name: [before[name], value] for name, value in after.items() if before.get(name) != value}
        verb = "changed"
    if not changes:
        return
    record(action=WATCHED[sender._meta.label_lower], target=instance, changes=changes,
           summary=f"{sender._meta.verbose_name} {verb}: {instance}")


def on_watched_deleted(sender, instance, **kwargs):
    record(action=WATCHED[sender._meta.label_lower], target=instance,
           changes={name: [value, None] for name, value in _values(instance).items() if value is not None},
           summary=f"{sender._meta.verbose_name} deleted: {described(instance)}")


# Deletions in the admin ----------------------------------------------------------------------


def _watch_admin_deletions():
    """Every registered ModelAdmin's ``log_deletions`` (the one hook both the delete page and the
    "delete selected" action call, before deleting) also writes an audit entry per object."""
    from django.contrib import admin

    for model_admin in admin.site._registry.values():
        original = model_admin.log_deletions

        def log_deletions(request, queryset, _original=original):
            for obj in queryset:
                label = obj._meta.label_lower
                content = label.startswith(CONTENT_MODELS)
                record(
                    action=Action.ADMIN_DELETE,
                    summary=f"deleted {obj._meta.verbose_name} {obj.pk}" + ("" if content else f": {obj}"[:150]),
                    changes={"type": label, "id": str(obj.pk)},
                )
            return _original(request, queryset)

        model_admin.log_deletions = log_deletions
