"""Model-group keys typed in the admin, kept encrypted at rest (``${secret:NAME}`` in the YAML).

Encryption is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under
``LAPIS_SECRETS_KEYS``: comma-separated Fernet keys, the first encrypts, every one decrypts, so
a key is rotated by putting the new one first and running ``manage.py rotate_secrets``. Without
the variable the key is derived from ``SECRET_KEY`` (``check --deploy`` warns: then whoever has
the database and the data directory has the keys).

A value leaves this module only as a string for ``config.Secret``: never in a log, a message
or an exception (an unreadable token is reported by name).
"""

import base64
import hashlib
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_VALUE_CHARS = 4096


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with any key of ``LAPIS_SECRETS_KEYS``."""


def _keys():
    configured = [k.strip() for k in (settings.LAPIS_SECRETS_KEYS or "").split(",") if k.strip()]
    if configured:
        return configured
    digest = hashlib.sha256(b"lapis-stored-secrets:" + settings.SECRET_KEY.encode()).digest()
    return [base64.urlsafe_b64encode(digest).decode()]


def cipher():
    """The MultiFernet of the configured keys (raises ValueError naming the bad entry)."""
    fernets = []
    for index, key in enumerate(_keys()):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ValueError(
                f"LAPIS_SECRETS_KEYS entry {index + 1} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
    return MultiFernet(fernets)


def encrypt(value):
    return cipher().encrypt(value.encode()).decode()


def decrypt(token, *, name):
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            f"stored secret {name} can't be decrypted with LAPIS_SECRETS_KEYS (was the key changed "
            "without keeping the old one?)"
        ) from None


def stored_secrets():
    """{name: value} of every stored secret; an unreadable one maps to a SecretUnreadable."""
    from apps.azure.models import StoredSecret

    values = {}
    for name, token in StoredSecret.objects.values_list("name", "ciphertext"):
        try:
            values[name] = decrypt(token, name=name)
        except SecretUnreadable as exc:
            values[name] = exc
    return values


def rotate():
    """Re-encrypt every stored secret under the first key; return how many were rewritten."""
    from apps.azure.models import StoredSecret

    current = cipher()
    count = 0
    for secret in StoredSecret.objects.all():
        try:
            token = current.rotate(secret.ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(f"stored secret {secret.name} can't be decrypted with LAPIS_SECRETS_KEYS") from None
        StoredSecret.objects.filter(pk=secret.pk).update(ciphertext=token)
        count += 1
    return count
