"""User B can neither see nor touch user A's conversations, messages or streams."""

import json
import uuid

import pytest

from apps.chat.models import Conversation, Message
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)


async def test_other_user_cannot_reach_anything_by_websocket(chat_config, user_a, user_b, open_socket, azure_simulator):
    alice = await open_socket(user_a[1])
    await alice.send({"type": "send", "client_id": "a1", "text": "Secret plans [sim:words 600] [sim:delay chunk=10]", "model": "gpt-4o"})
    answer = await alice.created_answer()
    question_id, conversation_id = answer["parent_id"], answer["conversation_id"]

    bob = await open_socket(user_b[1])
    attempts = [
        {"type": "resume", "message_id": answer["id"], "seq": 0},
        {"type": "stop", "message_id": answer["id"]},
        {"type": "regenerate", "message_id": answer["id"], "client_id": "b1"},
        {"type": "edit", "message_id": question_id, "text": "mine now", "client_id": "b2"},
        {"type": "send", "client_id": "b3", "text": "join", "conversation_id": conversation_id},
        {"type": "send", "client_id": "b4", "text": "reply", "conversation_id": None, "parent_id": question_id, "model": "gpt-4o"},
    ]
    for frame in attempts:
        await bob.send(frame)
        error = await bob.until(lambda f: f["type"] == "error")
        assert error["code"] in ("not_found", "busy") and error["code"] == "not_found", (frame, error)
    done = await alice.done(answer["id"], timeout=60)
    assert done["status"] == "complete", "B's stop must not have stopped A's answer"
    assert not [f for f in bob.frames if f["type"] in ("delta", "snapshot", "done", "message.created")]
    assert await Message.objects.filter(conversation__owner=user_b[0]).acount() == 0
    assert "Secret" not in json.dumps(bob.frames)


async def test_other_user_cannot_reach_anything_by_http(chat_config, user_a, user_b, open_socket):
    alice = await open_socket(user_a[1])
    await alice.send({"type": "send", "client_id": "a1", "text": "Secret", "model": "gpt-4o"})
    answer = await alice.created_answer()
    await alice.done(answer["id"])
    cid = answer["conversation_id"]
    bob = user_b[1]
    base = f"/api/chat/conversations/{cid}/"

    def bob_tries():
        statuses = [
            bob.get(base).status_code,
            bob.get(f"/c/{cid}/").status_code,
            bob.post(base + "rename", {"title": "x"}, content_type="application/json").status_code,
            bob.post(base + "archive", {"archived": True}, content_type="application/json").status_code,
            bob.post(base + "settings", {"system_prompt": "x"}, content_type="application/json").status_code,
            bob.post(base + "leaf", {"message_id": answer["id"]}, content_type="application/json").status_code,
            bob.post(base + "delete", {}, content_type="application/json").status_code,
            bob.get(base + "context").status_code,
            bob.get(base + "usage").status_code,
        ]
        listed = bob.get("/api/chat/conversations/").json()["items"]
        return statuses, listed

    statuses, listed = await ado(bob_tries)
    assert statuses == [404] * 9 and listed == []
    conversation = await Conversation.objects.aget(id=cid)
    assert conversation.title == "Secret" and not conversation.archived and not conversation.system_prompt
    # and a random id is the same 404 as someone else's
    assert (await ado(bob.get, f"/api/chat/conversations/{uuid.uuid4()}/")).status_code == 404
