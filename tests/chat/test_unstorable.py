"""Text the database can't store (NUL, a lone UTF-16 surrogate) and absurd page numbers are refused
at the edge with a clear message, on the real websocket and through the real views."""

import json

import pytest

from apps.chat.models import Message
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)

BAD = [("nul", "\\u0000", "NUL"), ("surrogate", "\\ud800", "surrogate")]


@pytest.mark.parametrize("name,escape,word", BAD)
@pytest.mark.parametrize("field", ["text", "client_id"])
async def test_frames_with_unstorable_text_are_refused(chat_config, user_a, open_socket, name, escape, word, field):
    socket = await open_socket(user_a[1])
    values = {"text": "hello", "client_id": "c1"}
    values[field] = f"a{escape}b"
    raw = '{"type": "send", "model": "gpt-4o", ' + ", ".join(
        f'"{key}": "{value}"' for key, value in values.items()
    ) + "}"
    await socket.communicator.send_to(text_data=raw)
    error = await socket.until(lambda f: f["type"] == "error")
    assert error["code"] == "bad_frame", error
    assert f"send.{field}" in error["message"] and word in error["message"], error
    assert await Message.objects.acount() == 0
    # The socket still works after the refusal.
    await socket.send({"type": "ping"})
    await socket.until(lambda f: f["type"] == "pong")


@pytest.mark.parametrize("name,escape,word", BAD)
async def test_rename_and_settings_with_unstorable_text_are_400(chat_config, user_a, open_socket, name, escape, word):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "a1", "text": "Hi", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    base = f"/api/chat/conversations/{answer['conversation_id']}/"

    def post(path, raw):
        return user_a[1].post(base + path, data=raw, content_type="application/json")

    rename = await ado(post, "rename", '{"title": "x' + escape + '"}')
    settings = await ado(post, "settings", '{"system_prompt": "x' + escape + '"}')
    for response, field in ((rename, "title"), (settings, "system_prompt")):
        assert response.status_code == 400, response.content
        message = json.loads(response.content)["error"]
        assert field in message and word in message, message


def test_huge_page_number_is_400(user_a):
    response = user_a[1].get("/api/chat/conversations/?page=99999999999999999999999")
    assert response.status_code == 400
    assert "page must be at most" in response.json()["error"]
