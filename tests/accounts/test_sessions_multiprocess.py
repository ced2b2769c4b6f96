"""Sessions end on every process: two Daphne processes on one PostgreSQL and one Redis; a socket
on B closes when its user logs out through A, or is deactivated or loses a group from a third
process (manage.py shell). PostgreSQL + Redis profile only, like tests/chat/test_multiprocess.py
(on SQLite one process is the deployment; there the per-frame check covers a lost event)."""

import asyncio
import time
import uuid

import aiohttp
import pytest

from tests.chat.test_multiprocess import Browserless, pytestmark  # noqa: F401 - the profile skip
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

CLOSE_TIMEOUT = 30


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    env = {"SECRET_KEY": "sessions-" + uuid.uuid4().hex}
    a = LiveServer(tmp_path_factory.mktemp("sessions-a"), extra_env=env)
    b = None
    try:
        a.start()
        for name in ("alice", "bob", "carl"):
            a.create_user(name, TEST_PASSWORD)
        a.shell("from django.contrib.auth.models import Group, User;"
                "User.objects.get(username='carl').groups.add(Group.objects.create(name='premium'))")
        b = LiveServer(tmp_path_factory.mktemp("sessions-b"), extra_env=env, database_url=a.database_url)
        b.start(migrate=False)
        yield a, b
    finally:
        if b is not None:
            b.stop()
        a.stop()


async def closed(socket):
    message = await asyncio.wait_for(socket.ws.receive(), CLOSE_TIMEOUT)
    while message.type == aiohttp.WSMsgType.TEXT:
        message = await asyncio.wait_for(socket.ws.receive(), CLOSE_TIMEOUT)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    return message.data if message.type == aiohttp.WSMsgType.CLOSE else socket.ws.close_code


async def test_logout_on_a_closes_the_socket_on_b(servers):
    a, b = servers
    alice = await Browserless.sign_in(a, "alice")
    try:
        socket = await alice.socket(b)
        token = next(c.value for c in alice.session.cookie_jar if c.key == "csrftoken")
        started = time.monotonic()
        async with alice.session.post(a.url + "/logout/", data={"csrfmiddlewaretoken": token},
                                      headers={"Origin": a.url}, allow_redirects=False) as response:
            assert response.status == 302
        assert await closed(socket) == 4401
        print(f"figure: logout on A to socket closed on B: {time.monotonic() - started:.3f} s")
    finally:
        await alice.close()


@pytest.mark.parametrize(("username", "code", "change"), [
    ("bob", 4401, "u.is_active = False; u.save()"),
    ("carl", 4403, "u.groups.clear()"),
])
async def test_a_change_from_another_process_closes_the_socket_on_b(servers, username, code, change):
    a, b = servers
    user = await Browserless.sign_in(a, username)
    try:
        socket = await user.socket(b)
        started = time.monotonic()  # includes the manage.py shell start-up (about a second)
        await asyncio.to_thread(
            a.shell, f"from django.contrib.auth.models import User; u = User.objects.get(username={username!r}); {change}"
        )
        assert await closed(socket) == code
        print(f"figure: {change!r} in another process to socket closed on B: {time.monotonic() - started:.3f} s")
    finally:
        await user.close()
