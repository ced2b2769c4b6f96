"""The real ASGI application: /healthz and the websocket handshake rules."""

import json
import urllib.request

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from project.application import application

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_reports_ok():
    response = await HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"localhost")]).get_response()
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "database": "ok", "channel_layer": "ok", "answers": "ok"}


def test_healthz_with_the_database_down_is_503(live_server_factory):
    import urllib.error
    import urllib.request

    server = live_server_factory(
        extra_env={"DATABASE_URL": "postgres://lapis:canary-pw@127.0.0.1:1/lapis"}, migrate=False
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(server.url + "/healthz", timeout=10)
    assert excinfo.value.code == 503
    body = json.loads(excinfo.value.read())
    assert body["status"] == "unavailable"
    assert body["database"].startswith("error") and body["channel_layer"] == "ok"
    assert "canary-pw" not in json.dumps(body)


async def connect(headers):
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def test_websocket_refuses_anonymous_user():
    communicator, connected, code = await connect([(b"origin", b"http://localhost"), (b"host", b"localhost")])
    assert not connected and code == 4401
    await communicator.disconnect()


def session_cookie():
    user = get_user_model().objects.create_user("wsuser", password="Zebra-crossing-42!")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_websocket_accepts_signed_in_user_from_same_origin():
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)()
    communicator, connected, _ = await connect(
        [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    )
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


async def test_websocket_refuses_foreign_origin_even_when_signed_in():
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)()
    communicator, connected, _ = await connect(
        [(b"origin", b"https://evil.example"), (b"host", b"localhost"), (b"cookie", cookie)]
    )
    assert not connected
    await communicator.disconnect()


def test_live_server_moves_on_when_its_port_is_taken(tmp_path):
    """The test harness itself: a port taken between free_port() and Daphne's bind is retried."""
    import socket

    from tests.live import LiveServer

    server = LiveServer(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", server.port))
    taken.listen()
    try:
        with server:
            assert server.port != taken.getsockname()[1]
            assert urllib.request.urlopen(server.url + "/healthz", timeout=10).status == 200
    finally:
        taken.close()
