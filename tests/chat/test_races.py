"""Races between tabs, through a real Daphne server (issue 12): updates of a conversation another
tab deleted are a 404, never a 500; deleting a conversation stops its answer and keeps its usage."""

import asyncio
import json
import uuid

import pytest
from yarl import URL

from tests.chat.test_multiprocess import Browserless, poll, request_with
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

TIMEOUT = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory, azure_simulator):
    data = tmp_path_factory.mktemp("races")
    config = data / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    live = LiveServer(data, extra_env={"CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key})
    live.start()
    live.create_user("rita", TEST_PASSWORD)
    yield live
    live.stop()


async def post(user, server, path, body):
    token = user.session.cookie_jar.filter_cookies(URL(server.url))["csrftoken"].value
    async with user.session.post(
        server.url + path, data=json.dumps(body),
        headers={"X-CSRFToken": token, "Origin": server.url, "Content-Type": "application/json"},
    ) as response:
        return response.status, await response.json()


async def new_answer(user, server, text):
    socket = await user.socket(server)
    await socket.send({
        "type": "send", "conversation_id": None, "client_id": uuid.uuid4().hex, "model": "gpt-4o",
        "text": text,
    })
    created = await socket.created_answer()
    return socket, created["conversation_id"], created["id"]


def usage_rows(server):
    code = (
        "import json; from apps.chat.models import UsageRecord;"
        "print(json.dumps([[str(r.conversation_id), r.completion_tokens] "
        "for r in UsageRecord.objects.filter(purpose='chat')]))"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


async def test_rename_and_archive_racing_a_delete_are_404_never_500(server):
    user = await Browserless.sign_in(server, "rita")
    try:
        for _ in range(3):
            socket, conversation_id, answer_id = await new_answer(user, server, "Hi [sim:words 3]")
            await socket.done(answer_id)
            await socket.close()
            base = f"/api/chat/conversations/{conversation_id}"
            statuses = await asyncio.gather(
                post(user, server, base + "/delete", {}),
                post(user, server, base + "/rename", {"title": "Racing"}),
                post(user, server, base + "/archive", {"archived": True}),
                post(user, server, base + "/settings", {"temperature": 0.5}),
            )
            codes = [status for status, _ in statuses]
            assert codes[0] == 200, statuses
            assert all(code in (200, 404) for code in codes), statuses
            # After the delete, every update is a 404 and nothing brought the row back.
            for path, body in (("/rename", {"title": "Late"}), ("/archive", {"archived": False}),
                               ("/settings", {"temperature": 1})):
                status, body = await post(user, server, base + path, body)
                assert status == 404, (path, body)
            async with user.session.get(server.url + base + "/") as response:
                assert response.status == 404
    finally:
        await user.close()


async def test_deleting_a_conversation_stops_its_answer_and_keeps_the_usage(server, azure_simulator):
    user = await Browserless.sign_in(server, "rita")
    try:
        before = len(await asyncio.to_thread(usage_rows, server))
        nonce = "delete-" + uuid.uuid4().hex[:8]
        socket, conversation_id, answer_id = await new_answer(
            user, server, f"{nonce} [sim:words 600] [sim:delay chunk=20]"
        )
        await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answer_id)
        status, _ = await post(user, server, f"/api/chat/conversations/{conversation_id}/delete", {})
        assert status == 200
        done = await socket.done(answer_id, timeout=TIMEOUT)
        assert done["status"] == "stopped", done
        rows = await poll(
            lambda: (r := usage_rows(server)) and len(r) > before and r, timeout=TIMEOUT,
            what="the answer's usage record",
        )
        assert len(rows) == before + 1
        assert rows[-1][0] == "None", "the usage outlives the conversation"
        assert rows[-1][1] > 0
        # The answer stopped upstream too: the simulator saw the request closed early.
        entry = await poll(
            lambda: (e := request_with(azure_simulator, nonce)) and e["outcome"] is not None and e,
            timeout=TIMEOUT, what="the simulator to log the answer's request",
        )
        assert entry["outcome"] == "client_disconnected", entry
        assert "Traceback" not in server.log()
    finally:
        await user.close()
