"""Temporary chats across two real Daphne processes on PostgreSQL + Redis: a chat held by tabs
on both processes lasts until the last one closes; one held only by a process that was killed is
swept by ``manage.py apply_retention`` once its holds are stale. Usage rows stay."""

import asyncio
import os
import signal
import uuid

import aiohttp
import pytest

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    or not os.environ.get("REDIS_URL"),
    reason="several processes need the PostgreSQL + Redis profile (DATABASE_URL=postgres://..., REDIS_URL)",
)
TTL = 3  # RATE_LIMIT_SLOT_TTL: holds of a dead process are stale after this many seconds


@pytest.fixture
def servers(azure_simulator, tmp_path_factory):
    config = tmp_path_factory.mktemp("temporary-mp") / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {
        "CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key,
        "SECRET_KEY": "temporary-" + uuid.uuid4().hex, "RATE_LIMIT_SLOT_TTL": str(TTL),
    }
    a = LiveServer(tmp_path_factory.mktemp("tmp-a"), extra_env=env)
    b = None
    try:
        a.start()
        a.create_user("alice", TEST_PASSWORD)
        b = LiveServer(tmp_path_factory.mktemp("tmp-b"), extra_env=env, database_url=a.database_url)
        b.start(migrate=False)
        yield a, b
    finally:
        if b is not None:
            b.stop()
        a.stop()


def count(server, query):
    return int(server.shell(f"from apps.chat.models import *\nprint({query})").strip())


async def status(user, server, path):
    """GET on a new connection: a pooled one may have idled past HTTP_IDLE_TIMEOUT meanwhile
    (the server answers such a connection 408)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(cookie_jar=user.session.cookie_jar, connector=connector, connector_owner=True) as session:
        async with session.get(server.url + path) as response:
            return response.status


async def until(predicate, timeout=30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def temporary_chat(socket, client_id):
    await socket.send({"type": "send", "client_id": client_id, "text": "Hello", "model": "gpt-4o", "temporary": True})
    answer = await socket.created_answer()
    assert (await socket.done(answer["id"]))["status"] == "complete"
    return answer["conversation_id"]


async def test_tabs_on_two_processes_and_a_killed_process(servers):
    a, b = servers
    alice = await Browserless.sign_in(a, "alice")
    try:
        on_a = await alice.socket(a)
        cid = await temporary_chat(on_a, "t1")
        on_b = await alice.socket(b)
        await on_b.send({"type": "watch", "conversation_id": cid})
        await on_b.send({"type": "ping"})
        await on_b.until(lambda f: f["type"] == "pong")
        await on_a.close()  # the tab on A goes; B's still holds it
        await asyncio.sleep(TTL + 1)  # longer than the TTL: B's process keeps its hold fresh
        assert await status(alice, a, f"/api/chat/conversations/{cid}/") == 200
        await on_b.close()
        await until(lambda: _gone(alice, a, cid))

        # A chat only a killed process held: swept once its holds are stale, not before.
        on_b = await alice.socket(b)
        orphan = await temporary_chat(on_b, "t2")
        os.killpg(b.process.pid, signal.SIGKILL)
        b.process.wait()
        # (That a fresh hold keeps a chat from the sweep is tests/chat/test_temporary.py's: here
        # a command's start-up alone may take longer than this short TTL.)
        await asyncio.sleep(TTL + 1)
        out = a.manage("apply_retention").stdout
        assert "Swept 1 temporary chat(s)" in out
        assert await status(alice, a, f"/api/chat/conversations/{orphan}/") == 404
        assert count(a, "Conversation.objects.count()") == 0
        assert count(a, "UsageRecord.objects.filter(conversation__isnull=True).count()") == 2
    finally:
        await alice.close()


async def _gone(user, server, cid):
    return await status(user, server, f"/api/chat/conversations/{cid}/") == 404
