"""Lapis's settings with a channel layer that loses the tail of every answer (tests only)."""

from project.settings import *  # noqa: F403
from project.settings import CHANNEL_LAYERS, REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        **CHANNEL_LAYERS["default"],
        "BACKEND": "tests.chat.lossy_layer."
        + ("LossyRedisChannelLayer" if REDIS_URL else "LossyInMemoryChannelLayer"),
    }
}
