"""A small TCP proxy for fault tests: forwards to a real server until ``cut()``.

``cut()`` closes every forwarded connection and closes each new one at once (the database is
"gone": clients see a broken or refused connection, not a hang); ``restore()`` forwards again.
Threads, so it works whatever event loop the test runs.
"""

import socket
import threading


class TcpProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.lock = threading.Lock()
        self.sockets = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock):
        with self.lock:
            self.sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self):
        """Break every connection and refuse new ones until ``restore()``."""
        self.cut_off.set()
        with self.lock:
            current = list(self.sockets)
        for sock in current:
            self._close(sock)

    def restore(self):
        self.cut_off.clear()

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()
