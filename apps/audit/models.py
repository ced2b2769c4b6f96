"""The audit log: who changed what that governs Lapis, when, and from which address.

Rows are written once (apps.audit.services.record) and never changed; the admin shows them
read-only. They hold names, ids, field changes and (for model-group configurations) the YAML diff
with inline secrets masked — never message content, passwords or secrets.
"""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CONFIG_LOAD = "config.load", "config loaded"
        CONFIG_ACTIVATE = "config.activate", "config activated"
        CONFIG_ROLLBACK = "config.rollback", "config rolled back"
        USER_CREATE = "user.create", "user created"
        USER_DEACTIVATE = "user.deactivate", "user deactivated"
        USER_REACTIVATE = "user.reactivate", "user reactivated"
        USER_PROMOTE = "user.promote", "user promoted"
        USER_DEMOTE = "user.demote", "user demoted"
        USER_DELETE = "user.delete", "user deleted"
        GROUPS_CHANGE = "user.groups", "group membership changed"
        LIMITS_CHANGE = "limits.change", "budget or rate limit changed"
        RETENTION_CHANGE = "retention.change", "retention policy changed"
        KEY_CHANGE = "key.change", "stored key changed"
        RETENTION_APPLY = "retention.apply", "retention applied"
        ADMIN_DELETE = "admin.delete", "deleted in the admin"
        ADMIN_EXPORT = "admin.export", "exported by an admin"
        SIGN_IN = "signin", "admin sign-in"
        SIGN_IN_FAILED = "signin.failed", "failed admin sign-in"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    # The actor as a row (NULL for the system or once the user is deleted) and as a name kept
    # for good: "system", a command, or the username typed at a failed sign-in.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=64, blank=True, help_text="The client's address (TRUSTED_PROXY_COUNT applied).")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500)
    changes = models.JSONField(default=dict, blank=True)
    diff = models.TextField(blank=True, help_text="Unified diff of the YAML (inline secrets masked).")

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["action", "-created"], name="audit_action"),
            models.Index(fields=["actor", "-created"], name="audit_actor"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_name or 'system'} at {self.created:%Y-%m-%d %H:%M:%S}"
