"""Websocket origins through a live Daphne: only the exact origins Lapis is served from.

Issue 13: the check compared the host only, so a page on another port or scheme of an allowed
host could open a signed-in socket, and ``ALLOWED_HOSTS=*`` turned it off.
"""

import subprocess
import sys

import aiohttp
import pytest

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import ROOT, LiveServer, free_port


async def _signed_in(server, username):
    """An aiohttp session signed in to ``server`` (the multi-process tests' sign-in)."""
    return (await Browserless.sign_in(server, username)).session


async def _opens(session, server, origin, **headers):
    """True when a signed-in socket opened with ``origin`` answers a ping."""
    try:
        ws = await session.ws_connect(
            server.url.replace("http://", "ws://") + "/ws/chat/", origin=origin, headers=headers
        )
    except aiohttp.WSServerHandshakeError:
        return False
    try:
        await ws.send_json({"type": "ping"})
        message = await ws.receive(timeout=15)
        return message.type == aiohttp.WSMsgType.TEXT and "pong" in message.data
    finally:
        await ws.close()


def _start(tmp_path_factory, **env):
    server = LiveServer(tmp_path_factory.mktemp("origins"), extra_env=env)
    server.start()
    server.create_user("origin-user", TEST_PASSWORD)
    return server


@pytest.mark.parametrize("allowed_hosts", ["127.0.0.1,localhost", "*"])
async def test_only_the_served_origin_opens_a_socket(tmp_path_factory, allowed_hosts):
    server = _start(tmp_path_factory, ALLOWED_HOSTS=allowed_hosts)
    try:
        session = await _signed_in(server, "origin-user")
        try:
            other_port = free_port()
            assert await _opens(session, server, server.url)
            assert not await _opens(session, server, f"http://127.0.0.1:{other_port}")
            assert not await _opens(session, server, server.url.replace("http://", "https://"))
            assert not await _opens(session, server, "http://evil.example")
            assert not await _opens(session, server, "null")
        finally:
            await session.close()
    finally:
        server.stop()


async def test_a_trusted_origin_behind_a_proxy_opens_a_socket(tmp_path_factory):
    # Behind a TLS proxy the page is https://chat.example.org while Daphne sees plain HTTP.
    server = _start(
        tmp_path_factory,
        ALLOWED_HOSTS="127.0.0.1,chat.example.org",
        CSRF_TRUSTED_ORIGINS="https://chat.example.org",
    )
    try:
        session = await _signed_in(server, "origin-user")
        try:
            assert await _opens(session, server, "https://chat.example.org")
            assert not await _opens(session, server, "http://chat.example.org")
            assert not await _opens(session, server, "https://chat.example.org:8443")
        finally:
            await session.close()
    finally:
        server.stop()


def test_the_deploy_check_warns_about_a_wildcard_host(tmp_path):
    env = {"ALLOWED_HOSTS": "*", "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 60}
    import os

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )
    assert "lapis.W201" in result.stdout + result.stderr
