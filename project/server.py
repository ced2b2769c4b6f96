"""Lapis's HTTP server: Daphne with request bodies and slow clients bounded before Django runs.

Run it like Daphne, with the same options (``python -m project.server -b HOST -p PORT
project.asgi:application``). Daphne (through Twisted) reads a whole request body into memory or
a temporary file and hands it to the application only when it is complete, and Django's multipart
parser then makes several copies, so a limit in a view comes too late. Here:

- A body is refused with 413 as soon as it is known to be too big: a declared ``Content-Length``
  over the limit before a byte of it is read, a chunked (or otherwise unbounded) body at the byte
  that crosses it. The connection is closed without reading the rest.
- The limit depends on the URL only (``project.bodies.body_limit``: who is signed in is not
  known before Django runs).
- A connection must finish each request's line and headers within ``HTTP_HEADER_TIMEOUT``
  seconds, and one idle between requests is closed after ``HTTP_IDLE_TIMEOUT`` seconds (Twisted's
  60 s idle timer restarts at every byte, so a client trickling a request could hold it forever).
"""

import sys
from urllib.parse import unquote

from daphne import server as daphne_server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.web import http

from project import bodies


class BoundedRequest(WebRequest):
    """Daphne's request, refusing a body over ``body_limit`` before it is stored."""

    refused = False
    received = 0
    limit = None
    path = ""

    def gotLength(self, length):
        # Called once the headers are in, before any of the body: the request line is on the channel.
        path = self.channel._path.split(b"?", 1)[0]
        try:
            self.path = unquote(path.decode("ascii"))
            self.limit = bodies.body_limit(self.path)
        except UnicodeDecodeError:
            self.limit = 0  # Daphne answers 400 for such a path; it gets no body either
        if length is not None and length > self.limit:
            self._refuse(size=length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self, *, size=None):
        """Answer 413 and close without reading the rest of the body."""
        self.refused = True
        body = bodies.too_large(self.limit, size=size, path=self.path)
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()


class BoundedChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with a deadline for each request's line and headers."""

    head_timeout = None  # seconds; set by the factory
    _head_call = None

    def connectionMade(self):
        super().connectionMade()
        self._arm_head_deadline()

    def allHeadersReceived(self):
        self._disarm_head_deadline()
        super().allHeadersReceived()

    def _send100Continue(self):
        # A body refused from its declared length is not invited after all.
        if not self.requests[-1].refused:
            super()._send100Continue()

    def requestDone(self, request):
        # The next request on this connection gets its own deadline; armed first because
        # requestDone replays pipelined data, whose headers may all be in already.
        if self.persistent:
            self._arm_head_deadline()
        super().requestDone(request)

    def connectionLost(self, reason):
        self._disarm_head_deadline()
        super().connectionLost(reason)

    def _arm_head_deadline(self):
        self._disarm_head_deadline()
        if self.head_timeout:
            self._head_call = self.callLater(self.head_timeout, self._head_late)

    def _disarm_head_deadline(self):
        if self._head_call is not None and self._head_call.active():
            self._head_call.cancel()
        self._head_call = None

    def _head_late(self):
        self._head_call = None
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        self.timeoutConnection()  # closes, and aborts if the peer does not read


class BoundedHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory building BoundedChannel / BoundedRequest, with the idle timeout."""

    def __init__(self, server):
        super().__init__(server)
        self.timeOut = server.http_idle_timeout

    def protocol(self):
        channel = BoundedChannel()
        channel.head_timeout = self.server.http_header_timeout
        return http._GenericHTTPChannelProtocol(channel)

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol


class LapisServer(daphne_server.Server):
    """Daphne's server with BoundedHTTPFactory and the timeouts from the settings."""

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.http_idle_timeout = settings.HTTP_IDLE_TIMEOUT
        self.http_header_timeout = settings.HTTP_HEADER_TIMEOUT

    def run(self):
        from django.conf import settings

        # Server.run builds its factory as ``HTTPFactory(self)`` from its own module.
        daphne_server.HTTPFactory = BoundedHTTPFactory
        if settings.METRICS_ADDRESS:  # this process's own figures, off the public port
            from apps.observability.metrics import serve_on_address

            serve_on_address(settings.METRICS_ADDRESS)
        super().run()


class LapisCommandLine(CommandLineInterface):
    server_class = LapisServer


def main(argv=None):
    LapisCommandLine().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
