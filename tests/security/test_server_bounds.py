"""Request bodies and slow clients through the real server (project/server.py, Daphne), over raw sockets.

Issue 13: Daphne read any body a client sent (100 MB multipart cost +1.25 GB) before a view or a
limit ran, on any address, anonymously; and a half-sent request or websocket upgrade held its
connection for 60 s (for ever when it trickled a byte now and then).
"""

import asyncio
import select
import socket
import time

import aiohttp
import pytest
from yarl import URL

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer
from tests.media import imagefiles

HEAD_TIMEOUT = 2  # HTTP_HEADER_TIMEOUT / HTTP_IDLE_TIMEOUT for this server: quick tests
BOUNDED_WAIT = 20  # a test gives up waiting for the server after this many seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(
        tmp_path_factory.mktemp("bounds"),
        extra_env={"HTTP_HEADER_TIMEOUT": str(HEAD_TIMEOUT), "HTTP_IDLE_TIMEOUT": str(HEAD_TIMEOUT)},
    )
    live.start()
    live.create_user("bounds-user", TEST_PASSWORD)
    yield live
    live.stop()


def _connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUNDED_WAIT)
    return sock


def _head(path, *headers):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_until_closed(sock):
    """Everything the server sends until it closes the connection (socket.timeout if it does not)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _wait_readable(sock, seconds):
    return bool(select.select([sock], [], [], seconds)[0])


@pytest.mark.parametrize(
    "path", ["/healthz", "/login/", "/api/chat/conversations/", "/media/uploads/", "/no-such-page"]
)
def test_a_declared_oversized_body_is_refused_before_it_is_sent(server, path):
    with _connect(server) as sock:
        # 100 MB declared (over the upload limit too); not one byte of it is sent.
        sock.sendall(
            _head(
                path,
                "Content-Length: 104857600",
                "Content-Type: multipart/form-data; boundary=x",
                "Expect: 100-continue",  # as curl sends: the body is not invited
            )
        )
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer, answer[:200]
    assert b"100 MB" in answer and b"limit for this address" in answer


def test_an_anonymous_body_over_the_small_limit_is_refused(server):
    with _connect(server) as sock:
        sock.sendall(_head("/login/", "Content-Length: 200000", "Content-Type: application/x-www-form-urlencoded"))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"64 KB" in answer


@pytest.mark.parametrize("path", ["/healthz", "/media/uploads/"])
def test_a_chunked_body_is_refused_at_the_byte_over_the_limit(server, path):
    limit = 64 * 1024 if path == "/healthz" else 20 * 1024 * 1024 + 64 * 1024
    total = limit + 16 * 1024 * 1024  # what we try to send: far more than socket buffers hold
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    answer = b""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(BOUNDED_WAIT)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(_head(path, "Transfer-Encoding: chunked", "Content-Type: application/octet-stream"))
        # Stop as soon as the server answers, or closes (its answer is then in our buffer).
        while sent < total and not _wait_readable(sock, 0):
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += 65536
        if _wait_readable(sock, BOUNDED_WAIT):
            answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"larger" in answer
    assert sent < total, "the server read the whole body instead of stopping at its limit"


async def test_a_signed_in_upload_within_the_limit_still_works(server):
    signed_in = await Browserless.sign_in(server, "bounds-user")
    session = signed_in.session
    try:
        token = session.cookie_jar.filter_cookies(URL(server.url))["csrftoken"].value
        form = aiohttp.FormData()
        # ~1 MB of noise: well over the anonymous limit, within the upload limit.
        form.add_field("file", imagefiles.noisy_png(600, 600), filename="noise.png", content_type="image/png")
        async with session.post(
            server.url + "/media/uploads/", data=form, headers={"X-CSRFToken": token, "Origin": server.url}
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        assert body["width"] == 600 and body["height"] == 600
    finally:
        await session.close()


@pytest.mark.parametrize("path", ["/media/uploads/", "/admin/azure/configversion/add/"])
def test_an_anonymous_body_within_a_large_address_limit_reaches_django_and_is_refused_there(server, path):
    # The upload and config-load addresses take a large body from anyone at the server; their
    # views refuse it without a session (the server cannot know who is signed in).
    data = imagefiles.noisy_png(300, 300)
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.png\"\r\n"
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    assert len(body) > 64 * 1024
    with _connect(server) as sock:
        sock.sendall(
            _head(path, f"Content-Length: {len(body)}", "Content-Type: multipart/form-data; boundary=b", "Connection: close")
            + body
        )
        answer = _read_until_closed(sock)
    status = answer.split(b"\r\n", 1)[0]
    assert b"413" not in status and (b"302" in status or b"403" in status), status


def _closed_within(sock, seconds, trickle=b""):
    """True when the server closes ``sock`` within ``seconds``, while we send ``trickle`` a byte
    every 0.5 s (Twisted's idle timer restarted at every byte)."""
    deadline = time.monotonic() + seconds
    position = 0
    while time.monotonic() < deadline:
        if _wait_readable(sock, 0.5):
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
            continue  # e.g. the 408 before the close
        if position < len(trickle):
            try:
                sock.send(trickle[position : position + 1])
            except OSError:
                return True
            position += 1
    return False


@pytest.mark.parametrize(
    "head",
    [
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        # A websocket upgrade whose headers never finish.
        "GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        "GET /heal",  # not even the request line
    ],
)
def test_a_request_head_that_never_finishes_is_dropped(server, head):
    with _connect(server) as sock:
        sock.sendall(head.encode())
        assert _closed_within(sock, BOUNDED_WAIT, trickle=b"X-Slow: " + b"a" * 200)


def test_an_idle_connection_is_dropped_after_its_last_request(server):
    with _connect(server) as sock:
        assert _closed_within(sock, BOUNDED_WAIT)  # never sends a byte
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _wait_readable(sock, BOUNDED_WAIT)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Kept alive, then a next request that never finishes: its own head deadline applies.
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert _closed_within(sock, BOUNDED_WAIT, trickle=b"X-Slow: " + b"a" * 200)


async def test_an_open_websocket_outlives_the_head_and_idle_timeouts(server):
    signed_in = await Browserless.sign_in(server, "bounds-user")
    try:
        socket_ = await signed_in.socket(server)
        await asyncio.sleep(2 * HEAD_TIMEOUT + 1)  # quiet for longer than both deadlines
        await socket_.send({"type": "ping"})
        await socket_.until(lambda frame: frame["type"] == "pong")
    finally:
        await signed_in.session.close()


def test_five_hundred_half_sent_upgrades_are_all_dropped_while_the_server_answers(server):
    # No per-user or per-address cap is needed for this bound: every connection has its deadline.
    head = b"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    sockets = [_connect(server) for _ in range(500)]
    try:
        for sock in sockets:
            sock.sendall(head)
        with _connect(server) as probe:
            probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert _read_until_closed(probe).startswith(b"HTTP/1.1 200 ")
        open_ = set(sockets)
        deadline = time.monotonic() + BOUNDED_WAIT
        while open_ and time.monotonic() < deadline:
            for sock in select.select(list(open_), [], [], 0.5)[0]:
                try:
                    if sock.recv(65536):
                        continue  # the 408 before the close
                except ConnectionResetError:
                    pass
                open_.discard(sock)
        assert not open_, f"{len(open_)} of 500 half-sent upgrades still open"
    finally:
        for sock in sockets:
            sock.close()
