"""Start-up work for server processes.

Apps register hooks in ``AppConfig.ready()`` with ``at_startup``; ``project.asgi`` runs them once
when a server process loads the application (not for management commands). Daphne does not speak
the ASGI lifespan protocol, so this is the one place every server process passes through.
Shutdown (SIGTERM) is below: ``at_shutdown`` hooks, ``draining()``, websockets closed with 1012.
"""

import asyncio
import functools
import logging
import sys

logger = logging.getLogger("lapis.startup")
_hooks = []


def at_startup(hook):
    """Register ``hook()`` (order of registration) to run when a server process starts."""
    _hooks.append(hook)
    return hook


def run_startup_hooks():
    """Run every registered hook; a failing hook raises so a broken start stops the process."""
    for hook in _hooks:
        hook()


# Graceful shutdown (SIGTERM): Daphne runs on Twisted's asyncio reactor and stops it on SIGTERM;
# the reactor's "before shutdown" triggers run first, and one that returns a Deferred is waited
# for. Ours stops new work, closes every websocket with 1012 (service restart: browsers reconnect,
# to another process, and resume) and runs the ``at_shutdown`` hooks (apps.chat saves every
# running answer) before Daphne's own trigger has cancelled anything that writes.
CLOSE_RESTARTING = 1012
_shutdown_hooks = []
_sockets = {}  # id → the ASGI send of an accepted websocket
_state = {"draining": False}


def at_shutdown(hook):
    """Register ``async hook()`` to run (all at once, awaited) when the process shuts down."""
    _shutdown_hooks.append(hook)
    return hook


def draining():
    """True once the process is shutting down: refuse new answers."""
    return _state["draining"]


class TrackWebsockets:
    """ASGI middleware: knows every open websocket (to close it with 1012 on shutdown) and
    refuses new ones while the process drains (the browser retries, on another process)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if draining():
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_RESTARTING})
            return None
        key = object()

        async def tracked_send(message):
            if message["type"] == "websocket.accept":
                _sockets[key] = send
            elif message["type"] == "websocket.close":
                _sockets.pop(key, None)
            await send(message)

        try:
            return await self.app(scope, receive, tracked_send)
        finally:
            _sockets.pop(key, None)


async def _close_restarting(send):
    """Close one websocket with 1012 "service restart".

    Autobahn (under Daphne) refuses to send any code but 1000 and 3000-4999 through the ASGI
    close, although RFC 6455's registry defines 1012 for exactly this; Daphne's ``send`` is a
    partial of its handler and the websocket protocol, so the close frame goes out through the
    protocol's own close-frame method. Anything else gets a normal close (browsers reconnect
    on every code but 4401).
    """
    protocol = send.args[-1] if isinstance(send, functools.partial) and send.args else None
    if hasattr(protocol, "sendCloseFrame"):
        protocol.sendCloseFrame(code=CLOSE_RESTARTING, isReply=False)
    else:
        await send({"type": "websocket.close", "code": 1000})


async def shut_down():
    """Stop taking work, close the sockets with 1012, run the shutdown hooks; never raises."""
    _state["draining"] = True
    closing = [_close_restarting(send) for send in list(_sockets.values())]
    _sockets.clear()
    results = await asyncio.gather(*closing, *(hook() for hook in _shutdown_hooks), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            logger.error("Shutdown step failed: %r", result)


def install_shutdown_trigger():
    """On Daphne (Twisted's reactor already installed), run ``shut_down`` before the reactor stops.

    Does nothing elsewhere: importing twisted's reactor here would install one.
    """
    if "twisted.internet.reactor" not in sys.modules:
        return False
    from twisted.internet import defer, reactor

    def before_shutdown():
        logger.warning("Shutting down: finishing or saving running answers")
        return defer.Deferred.fromFuture(asyncio.ensure_future(shut_down()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
    return True
