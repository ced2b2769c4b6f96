"""Helpers for the chat tests: signed-in sockets on the real ASGI app, frames until ``done``."""

import asyncio
import contextlib

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from project.application import application
from tests.conftest import TEST_PASSWORD as PASSWORD_FOR_BROWSER
from tests.conftest import login
from tests.live import LiveServer

PASSWORD = "Zebra-crossing-42!"
HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


def make_user_and_client(username, *, staff=False):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)
    client = Client()
    client.force_login(user)
    return user, client


class ChatSocket:
    """A signed-in websocket on the real ASGI application."""

    def __init__(self, client):
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        self.communicator = WebsocketCommunicator(
            application, "/ws/chat/", headers=[*HEADERS, (b"cookie", cookie)]
        )
        self.frames = []

    async def connect(self):
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def send(self, frame):
        await self.communicator.send_json_to(frame)

    async def receive(self, timeout=20):
        frame = await self.communicator.receive_json_from(timeout=timeout)
        self.frames.append(frame)
        return frame

    async def until(self, predicate, timeout=30):
        """Receive frames until one matches ``predicate``; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive(timeout=max(deadline - loop.time(), 0.01))
            if predicate(frame):
                return frame

    async def created_answer(self):
        frame = await self.until(
            lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant"
        )
        return frame["message"]

    async def done(self, message_id, timeout=30):
        return await self.until(
            lambda f: f["type"] == "done" and f["message_id"] == message_id, timeout=timeout
        )

    def text_of(self, message_id):
        """The answer as a client assembles it: latest snapshot, then deltas in seq order.

        Fails on a duplicated or skipped seq, which would mean missing or repeated text.
        """
        text, seq = "", 0
        for frame in self.frames:
            if frame.get("message_id") != message_id:
                continue
            if frame["type"] == "snapshot" and frame["seq"] >= seq:
                text, seq = frame["text"], frame["seq"]
            elif frame["type"] == "delta" and frame["seq"] > seq:
                assert frame["seq"] == seq + 1, f"gap in seq: {seq} then {frame['seq']}"
                text, seq = text + frame["text"], frame["seq"]
        return text

    async def close(self):
        if not getattr(self, "closed", False):
            self.closed = True
            await self.communicator.disconnect()


@pytest.fixture
def chat_config(azure_simulator, activate_config, settings):
    """The simulator's config active; a short idle timeout so a stall fails fast."""
    settings.CHAT_IDLE_TIMEOUT = 1.5
    azure_simulator.reset()
    # titles and summaries have their own tests; here the chat path alone, deterministic.
    return activate_config(azure_simulator.config_yaml(titleConvo=False, summarize=False))


@pytest.fixture
def user_a(db):
    return make_user_and_client("alice")


@pytest.fixture
def user_b(db):
    return make_user_and_client("bob")


@pytest.fixture
async def open_socket():
    """``await open_socket(client)``: a connected ChatSocket; all are closed after the test,
    and the test waits for the generations it started, so none outlives its database."""
    sockets = []

    async def open_(client):
        socket = await ChatSocket(client).connect()
        sockets.append(socket)
        return socket

    yield open_
    await wait_for_generations()
    for socket in sockets:
        # channels_redis keeps per-loop locks; a socket the test left open may fail to close
        # cleanly across loops, which says nothing about the code under test.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(), 5)


async def wait_for_generations():
    """Let this process's generation and title tasks finish (tests end with nothing running)."""
    from apps.chat import titles
    from apps.chat.generation import _running

    tasks = [g.task for g in list(_running.values()) if g.task] + list(titles._tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=30)


async def ado(fn, *args, **kwargs):
    return await sync_to_async(fn)(*args, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """A new channel-layer object per test: channels_redis binds its locks and connections to
    the event loop that first used them, and every async test has a loop of its own."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def start_simulated_server(tmp_path_factory, azure_simulator, *, username, extra_env=None, **config):
    """A live Lapis server whose CONFIG_PATH file is ``azure_simulator.config_yaml(**config)``
    (marked simulated), with one user ``username``; stop it with ``server.stop()``.

    ``extra_env``: more environment for the server (settings, a settings module)."""
    data = tmp_path_factory.mktemp("chat-live")
    path = data / "models.yaml"
    path.write_text(azure_simulator.config_yaml(simulated=True, **config))
    server = LiveServer(
        data,
        extra_env={
            "CONFIG_PATH": str(path), "LAPIS_SIM_KEY": azure_simulator.api_key, **(extra_env or {})
        },
    )
    server.start()
    server.create_user(username, PASSWORD_FOR_BROWSER)
    return server


def open_chat_page(browser, server, username, *, height=860, timeout=15_000, clipboard=False):
    """A signed-in chat page in a fresh browser context, collecting console and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    page.set_default_timeout(timeout)
    login(page, server.url, username)
    page.wait_for_selector("[data-chat][data-ready='1']")
    return page
