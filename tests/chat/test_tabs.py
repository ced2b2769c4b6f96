"""Two sockets of one user, and a lost tail, over real TCP websockets to a real Daphne.

The server side of what the page does (static/js/chat.js): every socket of the user gets
``message.created`` of an answer whichever socket started it; a socket that did not start it
sends ``resume`` and from then on streams the answer live to its ``done``; ``stop`` works from
any socket of the owner. When the channel layer loses the tail of an answer (the last deltas and
``done``, tests.chat.lossy_layer), a ``resume`` after the silence gets the complete answer from
the database and its ``done``. Both profiles: SQLite + in-memory layer, PostgreSQL + Redis.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.chat.conftest import start_simulated_server
from tests.chat.test_multiprocess import Browserless
from tests.live import ROOT

# How long a silent answer waits before the client resumes it (the page: CHAT_STREAM_SILENCE).
SILENCE = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lossy_server(tmp_path_factory, azure_simulator):
    server = start_simulated_server(
        tmp_path_factory, azure_simulator, username="alice", titleConvo=False, summarize=False,
        extra_env={"DJANGO_SETTINGS_MODULE": "tests.chat.lossy_settings", "LAPIS_TEST_KEEP_DELTAS": "2"},
    )
    yield server
    server.stop()


def stored(server, message_id):
    """(status, content) of a message, from the server's database."""
    out = server.shell(
        "import json; from apps.chat.models import Message;"
        f"m = Message.objects.get(id={message_id!r}); print(json.dumps([m.status, m.content]))"
    )
    return json.loads(out)


async def started_answer(socket):
    """The answer of the next ``message.created`` for an assistant message this socket gets."""
    frame = await socket.until(
        lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant"
    )
    return frame["message"]


async def two_sockets(server):
    user = await Browserless.sign_in(server, "alice")
    return user, await user.socket(server), await user.socket(server)


async def test_the_other_socket_follows_a_new_answer_live_and_can_stop_it(server):
    user, first, second = await two_sockets(server)
    try:
        await first.send({"type": "send", "conversation_id": None, "client_id": "t1", "text": "Hi [sim:echo]", "model": "gpt-4o"})
        hello = await started_answer(first)
        assert (await started_answer(second))["id"] == hello["id"]
        await first.done(hello["id"])
        conversation = hello["conversation_id"]

        await first.send({
            "type": "send", "conversation_id": conversation, "client_id": "t2",
            "text": "A story [sim:words 120] [sim:delay chunk=40]", "parent_id": hello["id"],
        })
        answer = await started_answer(second)
        assert answer["status"] == "streaming"
        await second.send({"type": "resume", "message_id": answer["id"], "seq": 0})
        done = await second.done(answer["id"])
        assert done["status"] == "complete"
        mine = [f for f in second.frames if f.get("message_id") == answer["id"]]
        kinds = [f["type"] for f in mine]
        # Live: a snapshot, then deltas after it, before the done.
        assert "snapshot" in kinds and "delta" in kinds[kinds.index("snapshot"):-1]
        await first.done(answer["id"])
        status, content = stored(server, answer["id"])
        assert status == "complete" and content
        assert second.text_of(answer["id"]) == first.text_of(answer["id"]) == content

        await first.send({
            "type": "send", "conversation_id": conversation, "client_id": "t3",
            "text": "A long one [sim:words 3000] [sim:delay chunk=30]", "parent_id": answer["id"],
        })
        long_answer = await started_answer(second)
        await second.send({"type": "resume", "message_id": long_answer["id"], "seq": 0})
        await second.until(lambda f: f["type"] == "delta" and f["message_id"] == long_answer["id"])
        await second.send({"type": "stop", "message_id": long_answer["id"]})
        for socket in (first, second):
            assert (await socket.done(long_answer["id"]))["status"] == "stopped"
        status, content = stored(server, long_answer["id"])
        assert status == "stopped"
        assert second.text_of(long_answer["id"]) == first.text_of(long_answer["id"]) == content
    finally:
        await first.close()
        await second.close()
        await user.session.close()


async def test_a_lost_tail_is_recovered_by_resuming_after_silence(lossy_server):
    user = await Browserless.sign_in(lossy_server, "alice")
    socket = await user.socket(lossy_server)
    try:
        await socket.send({
            "type": "send", "conversation_id": None, "client_id": "l1",
            "text": "A story [sim:words 80] [sim:delay chunk=30]", "model": "gpt-4o",
        })
        answer = await started_answer(socket)
        resumes = 0
        done = None
        while done is None and resumes < 30:
            try:
                frame = await socket.receive(timeout=SILENCE)
            except TimeoutError:  # silence on a streaming answer: ask for it again
                resumes += 1
                seq = max([0] + [f["seq"] for f in socket.frames if f.get("message_id") == answer["id"] and "seq" in f])
                await socket.send({"type": "resume", "message_id": answer["id"], "seq": seq})
                continue
            if frame["type"] == "done" and frame["message_id"] == answer["id"]:
                done = frame
        assert done is not None and done["status"] == "complete"
        live = [f["seq"] for f in socket.frames if f["type"] == "delta"]
        assert resumes >= 1 and max(live) == 2, "the layer let only deltas 1 and 2 through"
        status, content = stored(lossy_server, answer["id"])
        assert status == "complete" and len(content.split()) >= 60
        assert socket.text_of(answer["id"]) == content
        assert done["seq"] > 2
    finally:
        await socket.close()
        await user.session.close()


def test_the_silence_before_a_resume_is_a_setting_the_page_gets(chat_config, user_a, settings):
    settings.CHAT_STREAM_SILENCE = 3
    _, client = user_a
    page = client.get("/").content.decode()
    assert 'data-stream-silence-ms="3000"' in page

    code = "from django.conf import settings; print(settings.CHAT_STREAM_SILENCE)"
    run = lambda value: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", "shell", "-v0", "-c", code], cwd=ROOT,
        env={**os.environ, "CHAT_STREAM_SILENCE": value}, capture_output=True, text=True,
    )
    assert run("7").stdout.strip() == "7"
    refused = run("0")
    assert refused.returncode != 0
    assert "CHAT_STREAM_SILENCE must be between 1 and 600 seconds, not 0" in refused.stderr
