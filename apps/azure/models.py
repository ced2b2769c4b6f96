"""Stored versions of the model-group YAML; exactly one (or none, before the first load) is active."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ConfigVersion(models.Model):
    SOURCES = [
        ("admin_upload", "admin upload"),
        ("admin_paste", "admin paste"),
        ("file", "CONFIG_PATH file"),
        ("command", "management command"),
    ]

    text = models.TextField()
    checksum = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=20, choices=SOURCES)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=False)
    activated = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("activate_configversion", "Can activate a model-group configuration")]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_config_version"
            )
        ]

    def __str__(self):
        state = " (active)" if self.is_active else ""
        return f"Version {self.pk} from {self.get_source_display()}{state}"


class StoredSecret(models.Model):
    """A model-group key typed in the admin, referenced as ``${secret:NAME}``. Only the Fernet
    token is stored (apps.azure.secrets); the value is never shown again."""

    name = models.CharField(max_length=64, unique=True)
    ciphertext = models.TextField(editable=False)
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "stored key"

    def __str__(self):
        return self.name

    def set_value(self, value):
        from apps.azure import secrets

        self.ciphertext = secrets.encrypt(value)
