"""The chat fixtures (signed-in sockets on the real ASGI app, the simulator's config)."""

from tests.chat.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    _fresh_channel_layer,
    chat_config,
    open_socket,
    user_a,
    user_b,
)
