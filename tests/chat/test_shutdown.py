"""SIGTERM mid-answer on a real Daphne process (issue 12): sockets close with 1012, the running
answer is saved final with all the text streamed, and (PostgreSQL + Redis) the browser's socket,
reconnected to a second process, resumes it to the end."""

import asyncio
import json
import os
import signal
import uuid

import aiohttp

from tests.chat.test_multiprocess import Browserless, WireSocket, stored_message
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

MULTIPROCESS = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) and bool(
    os.environ.get("REDIS_URL")
)
TIMEOUT = 60


async def frames_until_close(socket):
    """Read frames until the server closes the socket; return the close code."""
    while True:
        message = await asyncio.wait_for(socket.ws.receive(), TIMEOUT)
        if message.type == aiohttp.WSMsgType.TEXT:
            socket.frames.append(json.loads(message.data))
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return socket.ws.close_code


async def test_sigterm_saves_running_answers_and_closes_sockets_with_1012(tmp_path_factory, azure_simulator):
    data = tmp_path_factory.mktemp("shutdown")
    config = data / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {
        "CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key,
        "SECRET_KEY": "shutdown-" + uuid.uuid4().hex, "SHUTDOWN_GRACE": "1",
    }
    a = LiveServer(data, extra_env=env)
    b = None
    a.start()
    try:
        a.create_user("sam", TEST_PASSWORD)
        if MULTIPROCESS:
            b = LiveServer(tmp_path_factory.mktemp("shutdown-b"), extra_env=env, database_url=a.database_url)
            b.start(migrate=False)
        user = await Browserless.sign_in(a, "sam")
        try:
            socket = await user.socket(a)
            await socket.send({
                "type": "send", "conversation_id": None, "client_id": uuid.uuid4().hex,
                "model": "gpt-4o", "text": "Go on [sim:words 600] [sim:delay chunk=30]",
            })
            answer_id = (await socket.created_answer())["id"]
            await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answer_id)
            os.killpg(a.process.pid, signal.SIGTERM)
            assert await frames_until_close(socket) == 1012
            streamed = socket.text_of(answer_id)
            await asyncio.to_thread(a.process.wait, TIMEOUT)
            assert "Task exception was never retrieved" not in a.log()

            server_left = b if b is not None else a
            stored = await asyncio.to_thread(stored_message, server_left, answer_id)
            assert stored["status"] == "interrupted", stored
            assert stored["content"].startswith(streamed) and len(stored["content"]) >= len(streamed)
            assert len(stored["content"].split()) < 600, "cut short by the shutdown, not finished"

            if b is not None:  # the browser reconnects to the other process and resumes
                resumed = WireSocket((await user.socket(b)).ws)
                await resumed.send({"type": "resume", "message_id": answer_id, "seq": 0})
                done = await resumed.done(answer_id)
                assert done["status"] == "interrupted"
                assert resumed.text_of(answer_id) == stored["content"]
        finally:
            await user.close()
    finally:
        if b is not None:
            b.stop()
        a.stop()
