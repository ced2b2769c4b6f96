"""Sessions end everywhere: sockets of a user who logs out, is deactivated, or loses a group or
the staff flag are closed (push, through the channel layer), and a socket whose event was lost
cannot act (pull: every frame checks the session). Real ASGI app, real channel layer of the
profile (in-memory or Redis)."""

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session

from tests.chat.conftest import ado, make_user_and_client

pytestmark = pytest.mark.django_db(transaction=True)
CLOSE_TIMEOUT = 20  # generous on a loaded machine; the close normally comes within milliseconds

async def closed_with(socket, code):
    output = await socket.communicator.receive_output(timeout=CLOSE_TIMEOUT)
    while output["type"] != "websocket.close":
        output = await socket.communicator.receive_output(timeout=CLOSE_TIMEOUT)
    socket.closed = True
    assert output.get("code") == code, output
    return output

async def ready(open_socket, client):
    """A socket whose connect() is over: the consumer handles frames in order, so a pong means
    it has joined its groups (accept() comes before the joins)."""
    socket = await open_socket(client)
    await socket.send({"type": "ping"})
    await socket.until(lambda f: f["type"] == "pong")
    return socket


def staff_member(username):
    user, client = make_user_and_client(username, staff=True)
    user.groups.add(Group.objects.get_or_create(name="premium")[0])
    return user, client

async def test_logout_closes_that_sessions_sockets_only(open_socket):
    user, client = await ado(make_user_and_client, "alice")
    from django.test import Client

    other = Client()
    await ado(other.force_login, user)
    mine, elsewhere = await ready(open_socket, client), await ready(open_socket, other)
    await ado(client.post, "/logout/")
    await closed_with(mine, 4401)
    # The other browser's session lives on: its socket still answers.
    await elsewhere.send({"type": "ping"})
    assert (await elsewhere.until(lambda f: f["type"] == "pong"))["type"] == "pong"

@pytest.mark.parametrize(("change", "code"), [
    (lambda u: setattr(u, "is_active", False) or u.save(), 4401),
    (lambda u: setattr(u, "is_staff", False) or u.save(), 4403),
    (lambda u: u.groups.remove(Group.objects.get(name="premium")), 4403),
    (lambda u: u.groups.clear(), 4403),
    (lambda u: Group.objects.get(name="premium").user_set.remove(u), 4403),
])
async def test_losing_rights_closes_every_socket_of_the_user(open_socket, change, code):
    user, client = await ado(staff_member, "sam")
    first, second = await ready(open_socket, client), await ready(open_socket, client)
    await ado(change, user)
    await closed_with(first, code)
    await closed_with(second, code)

async def test_a_socket_whose_session_ended_cannot_act_even_without_the_event(open_socket, monkeypatch):
    from apps.accounts import sessions

    user, client = await ado(make_user_and_client, "lost")
    socket = await ready(open_socket, client)
    # The push is lost (a dropped channel-layer message, or another process on SQLite): only the
    # per-frame check stands between the socket and the models.
    monkeypatch.setattr(sessions, "revoke", lambda **kwargs: None)
    await Session.objects.all().adelete()
    await socket.send({"type": "send", "client_id": "x1", "text": "hi", "model": "gpt-4o"})
    await closed_with(socket, 4401)

async def test_a_deactivated_user_cannot_act_even_without_the_event(open_socket, monkeypatch):
    from apps.accounts import sessions

    user, client = await ado(make_user_and_client, "gone")
    socket = await ready(open_socket, client)
    monkeypatch.setattr(sessions, "revoke", lambda **kwargs: None)
    user.is_active = False
    await user.asave()
    await socket.send({"type": "ping"})
    await closed_with(socket, 4401)

async def test_an_unchanged_user_keeps_the_socket(open_socket):
    user, client = await ado(staff_member, "kept")
    socket = await ready(open_socket, client)
    user.first_name = "Kept"
    await user.asave()
    await ado(user.groups.add, await Group.objects.acreate(name="extra"))
    await socket.send({"type": "ping"})
    assert (await socket.until(lambda f: f["type"] == "pong"))["type"] == "pong"
