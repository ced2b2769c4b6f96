"""The ASGI application without start-up side effects (tests import this one)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from project.bodies import BodyLimit  # noqa: E402
from project.lifecycle import TrackWebsockets  # noqa: E402
from project.origins import SameOriginWebsocket  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402  (needs the apps loaded)

application = ProtocolTypeRouter(
    {
        # Behind project.server a second line; under a server that streams bodies, the limit.
        "http": BodyLimit(django_asgi_app),
        "websocket": TrackWebsockets(
            SameOriginWebsocket(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
