"""Which pages may open a signed-in websocket: the exact origins Lapis is served from.

A browser sends ``Origin`` with every websocket handshake, and cookies go along whatever page
opened it, so the origin is the only thing that tells Lapis's own page from another site's (or
another port's or scheme's on the same host). It is accepted when it equals, scheme, host and
port:

- one of ``CSRF_TRUSTED_ORIGINS`` (what an operator behind a proxy sets), or
- the origin of the handshake itself: ``http(s)://`` + its ``Host`` header, with ``https`` when
  the handshake came over TLS (``wss``) or through a proxy that says so
  (``SECURE_PROXY_SSL_HEADER``), and only when that host is in ``ALLOWED_HOSTS``.

``ALLOWED_HOSTS=*`` therefore still leaves the check on: the page must come from the host the
browser connected to. The deploy check ``lapis.W201`` warns about ``*`` all the same.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin):
    """``origin`` as (scheme, host, port), or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _header(scope, name):
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def _served_over_tls(scope):
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, expected = proxy
        value = _header(scope, header.lower().removeprefix("http_").replace("_", "-"))
        return value is not None and value.split(",")[0].strip() == expected
    return False


def own_origin(scope):
    """The origin the handshake was made to, or None when its Host is not an allowed host."""
    host = _header(scope, "host")
    if not host:
        return None
    domain, _port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if _served_over_tls(scope) else "http"
    return normalise(f"{scheme}://{host}")


def origin_allowed(scope):
    """True when the handshake's ``Origin`` is one Lapis is served from (see the module)."""
    origin = _header(scope, "origin")
    if origin is None:
        return False
    parsed = normalise(origin)
    if parsed is None:
        return False
    trusted = {normalise(value) for value in settings.CSRF_TRUSTED_ORIGINS} - {None}
    return parsed in trusted or parsed == own_origin(scope)


class SameOriginWebsocket:
    """ASGI middleware: close a websocket handshake from any other origin (code 403 → 1006
    in the browser; the handshake is refused before the app sees the socket)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4403})
            return
        return await self.application(scope, receive, send)


@checks.register(checks.Tags.security, deploy=True)
def check_allowed_hosts(app_configs=None, **kwargs):
    if "*" in settings.ALLOWED_HOSTS:
        return [
            checks.Warning(
                "ALLOWED_HOSTS contains '*': Lapis answers to any Host header.",
                hint="List the host names Lapis is served under (ALLOWED_HOSTS=chat.example.org); "
                "the websocket origin check stays on either way, but host-header attacks on "
                "links and redirects do not.",
                id="lapis.W201",
            )
        ]
    return []
