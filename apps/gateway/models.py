"""Personal API keys: a user's key opens the /v1/ API as that user (apps.gateway.auth).

Only a SHA-256 digest of a key is stored, with a short visible prefix to tell keys apart. A key
is ``lapis-`` plus 32 random bytes (256 bits) from ``secrets``: guessing one, or inverting its
digest, is out of reach however fast the hash is, so a slow password hash (PBKDF2, Argon2) would
add nothing but tens of milliseconds to every API call and a way to load the server; a fast
digest also lets the key be found with one indexed lookup.

Who may have keys is a permission (``gateway.use_api_keys``), granted to Django groups in the
admin (Groups → permissions), or to a user. It is checked when a key is created and at every
use, so taking a user out of the group stops their keys at once.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "lapis-"
VISIBLE = 12  # characters of the key shown in lists: "lapis-" and 6 random ones
PERMISSION = "gateway.use_api_keys"


def digest(raw):
    """The stored form of a key: SHA-256 hex of its text."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret():
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    """One personal key. ``revoked`` set: refused for good. ``expires`` passed: refused."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=VISIBLE)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created"]
        permissions = [("use_api_keys", "Can create and use personal API keys")]
        indexes = [models.Index(fields=["user", "-created"], name="apikey_user")]

    def __str__(self):
        return f"{self.prefix}… {self.name} ({self.user})"

    def state(self, *, now=None):
        """"active", "revoked" or "expired"."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= (now or timezone.now()):
            return "expired"
        return "active"
