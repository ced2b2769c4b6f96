"""The body limit in the ASGI layer (project.bodies.BodyLimit), through a real uvicorn.

Uvicorn streams a body to the application as it arrives (and stops reading the socket while the
application does not ask for more), so the limit there is the ASGI guard's: a declared length
over it is refused before Django runs, a chunked body at the chunk that crosses it.
"""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.live import ROOT, LiveServer, free_port
from tests.security.test_server_bounds import (
    BOUNDED_WAIT,
    _head,
    _read_until_closed,
    _wait_readable,
)


@pytest.fixture(scope="module")
def uvicorn_url(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("uvicorn"))  # its environment and database only
    live.manage("migrate", "--noinput", "-v0")
    port = free_port()
    log = open(live.data_dir / "uvicorn.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "project.asgi:application"],
        cwd=ROOT, env=live.env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((live.data_dir / "uvicorn.log").read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        live.stop()



def test_a_declared_oversized_body_is_refused_in_the_asgi_layer(uvicorn_url):
    with socket.create_connection(("127.0.0.1", uvicorn_url), timeout=BOUNDED_WAIT) as sock:
        sock.sendall(_head("/healthz", "Content-Length: 104857600", "Content-Type: multipart/form-data; boundary=x"))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 MB" in answer


def test_a_chunked_body_is_refused_in_the_asgi_layer_at_the_limit(uvicorn_url):
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    total, sent, answer = 16 * 1024 * 1024, 0, b""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(BOUNDED_WAIT)
        sock.connect(("127.0.0.1", uvicorn_url))
        sock.sendall(_head("/login/", "Transfer-Encoding: chunked", "Content-Type: application/x-www-form-urlencoded"))
        while sent < total and not _wait_readable(sock, 0):
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += 65536
        if _wait_readable(sock, BOUNDED_WAIT):
            answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"larger" in answer and sent < total
