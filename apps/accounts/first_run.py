"""The first-run state: no user yet, and the one-time token that lets the owner claim it.

The token is derived from SECRET_KEY, so every server process of one installation prints and
accepts the same token without storing it, and it stops mattering once the first user exists.
"""

import logging

from django.contrib.auth import get_user_model
from django.utils.crypto import constant_time_compare, salted_hmac

logger = logging.getLogger("lapis.setup")
_has_users = False


def setup_token():
    return salted_hmac("lapis.first-run-setup", "token").hexdigest()[:24]


def check_setup_token(candidate):
    return constant_time_compare((candidate or "").strip(), setup_token())


def setup_needed():
    """True while no user account exists. Once one does, it stays False for this process."""
    global _has_users
    if not _has_users:
        _has_users = get_user_model().objects.exists()
    return not _has_users


def forget_setup_state():
    """For tests that start from an empty database within one process."""
    global _has_users
    _has_users = False


def announce_setup_token():
    """Log the setup URL and token at server start while the installation is unclaimed."""
    try:
        needed = setup_needed()
    except Exception:  # no tables yet: migrate has not run; nothing to announce
        return
    if needed:
        logger.warning(
            "No user exists yet. Open /setup/ and enter the setup token %s to create the admin.",
            setup_token(),
        )
