"""Bad frames get error frames on a socket that stays open; the start-up sweep; the HTTP API."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.chat.workers import sweep_interrupted
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)

BAD_FRAMES = [
    ("not json", "bad_frame", "not valid JSON"),
    ("[1, 2]", "bad_frame", "JSON object"),
    ("[" * 50000 + "]" * 50000, "bad_frame", "not valid JSON"),
    (json.dumps({"type": "dance"}), "bad_frame", "unknown frame type 'dance'"),
    (json.dumps({"type": ["send"]}), "bad_frame", "frame.type must be a string"),
    (json.dumps({"text": "no type"}), "bad_frame", "frame.type"),
    (json.dumps({"type": "send", "text": "hi"}), "bad_frame", "send.client_id is required"),
    (json.dumps({"type": "send", "client_id": "x", "text": 5}), "bad_frame", "send.text must be a string"),
    (json.dumps({"type": "send", "client_id": "x", "text": "  "}), "empty_message", "empty"),
    (json.dumps({"type": "send", "client_id": "x" * 65, "text": "hi"}), "bad_frame", "client_id"),
    (json.dumps({"type": "send", "client_id": "x", "text": "hi", "extra": 1}), "bad_frame", "unknown fields: extra"),
    (json.dumps({"type": "stop", "message_id": "not-an-id"}), "bad_frame", "stop.message_id must be an id"),
    (json.dumps({"type": "resume", "message_id": "6f1c1d8e-64e4-4a36-a7f1-1c1f0b1c3a11", "seq": -1}), "bad_frame", "non-negative"),
    (json.dumps({"type": "resume", "message_id": "6f1c1d8e-64e4-4a36-a7f1-1c1f0b1c3a11", "seq": True}), "bad_frame", "non-negative"),
    (json.dumps({"type": "stop", "message_id": "6f1c1d8e-64e4-4a36-a7f1-1c1f0b1c3a11"}), "not_found", "does not exist"),
    (json.dumps({"type": "send", "client_id": "x", "text": "x" * 300_000}), "frame_too_large", "larger than"),
    (json.dumps({"type": "send", "client_id": "x", "text": "hi", "model": "nope"}), "unknown_model", "'nope' is not available"),
    (json.dumps({"type": "send", "client_id": "y", "text": "hi", "model": "dall-e-3", "image": {"size": "7x7"}}), "bad_image_options", "image.size"),
    (json.dumps({"type": "send", "client_id": "y", "text": "hi", "image": {"color": "red"}}), "bad_frame", "unknown fields: color"),
]


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(chat_config, user_a, open_socket):
    socket = await open_socket(user_a[1])
    for text, code, words in BAD_FRAMES:
        await socket.communicator.send_to(text_data=text)
        frame = await socket.receive()
        assert frame["type"] == "error" and frame["code"] == code, (text[:60], frame)
        assert words in frame["message"], (text[:60], frame)
    await socket.communicator.send_to(bytes_data=b"\x00\x01")
    frame = await socket.receive()
    assert frame["code"] == "bad_frame" and "binary" in frame["message"]
    await socket.send({"type": "ping"})
    assert (await socket.receive()) == {"type": "pong", "version": 2}


def test_startup_sweep_marks_streaming_answers_interrupted(user_a):
    conversation = Conversation.objects.create(owner=user_a[0], model_key="gpt-4o")
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    left = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", status="streaming",
        content="half an ans", seq=3,
    )
    done = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", status="complete", content="ok"
    )
    # With Redis other live processes may be streaming: only answers silent for a while count.
    Message.objects.filter(id=left.id).update(updated=timezone.now() - timedelta(minutes=5))
    assert sweep_interrupted() == 1
    left.refresh_from_db()
    done.refresh_from_db()
    assert left.status == "interrupted" and left.content == "half an ans" and "stopped" in left.error_message
    assert done.status == "complete"


def test_http_api_list_rename_archive_settings_delete(chat_config, user_a):
    user, client = user_a
    conversations = [
        Conversation.objects.create(owner=user, model_key="gpt-4o", title=f"chat {n}") for n in range(35)
    ]
    page1 = client.get("/api/chat/conversations/").json()
    assert [c["title"] for c in page1["items"][:2]] == ["chat 34", "chat 33"] and page1["has_more"]
    page2 = client.get("/api/chat/conversations/?page=2").json()
    assert len(page2["items"]) == 5 and not page2["has_more"]
    assert client.get("/api/chat/conversations/?page=x").status_code == 400

    base = f"/api/chat/conversations/{conversations[0].id}/"
    post = lambda path, body: client.post(base + path, body, content_type="application/json")  # noqa: E731
    assert post("rename", {"title": "  Trip   plans "}).json()["conversation"]["title"] == "Trip plans"
    assert post("rename", {"title": ""}).json() == {"error": "A title cannot be empty."}
    assert post("archive", {"archived": True}).json()["conversation"]["archived"] is True
    assert client.get("/api/chat/conversations/?archived=1").json()["items"][0]["title"] == "Trip plans"
    assert post("archive", {"archived": "yes"}).status_code == 400
    saved = post("settings", {"system_prompt": "Be brief.", "temperature": 0.3, "max_output_tokens": 500, "model_key": "gpt-4o-mini"})
    assert {k: saved.json()["conversation"][k] for k in ("system_prompt", "temperature", "max_output_tokens", "model_key")} == {
        "system_prompt": "Be brief.", "temperature": 0.3, "max_output_tokens": 500, "model_key": "gpt-4o-mini"}
    assert "between 0 and 2" in post("settings", {"temperature": 7}).json()["error"]
    assert "whole number" in post("settings", {"max_output_tokens": "lots"}).json()["error"]
    assert "not a configured model" in post("settings", {"model_key": "nope"}).json()["error"]
    assert "Unknown setting" in post("settings", {"colour": "blue"}).json()["error"]
    assert post("settings", {"image_detail": "low"}).json()["conversation"]["image_detail"] == "low"
    assert post("settings", {"image_detail": "tiny"}).json()["error"] == "Image detail must be auto, low or high."
    assert client.post(base + "rename", "{not json", content_type="application/json").json()["error"] == (
        "The request body is not valid JSON."
    )
    assert client.get(base + "rename").status_code == 405
    assert post("delete", {}).status_code == 200
    assert client.get(base).status_code == 404


def test_writes_need_the_csrf_token(user_a):
    from django.test import Client

    user, _ = user_a
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    conversation = Conversation.objects.create(owner=user, model_key="gpt-4o", title="t")
    response = client.post(f"/api/chat/conversations/{conversation.id}/rename", {"title": "x"}, content_type="application/json")
    assert response.status_code == 403


def test_conversation_json_has_every_branch_and_the_current_leaf(user_a):
    user, client = user_a
    conversation = Conversation.objects.create(owner=user, model_key="gpt-4o")
    q = Message.objects.create(conversation=conversation, role="user", content="q")
    a1 = Message.objects.create(conversation=conversation, parent=q, role="assistant", content="one")
    a2 = Message.objects.create(conversation=conversation, parent=q, role="assistant", content="two")
    conversation.current_leaf = a2
    conversation.save()
    data = client.get(f"/api/chat/conversations/{conversation.id}/").json()
    assert [m["content"] for m in data["messages"]] == ["q", "one", "two"]
    assert data["current_leaf_id"] == str(a2.id)
    response = client.post(
        f"/api/chat/conversations/{conversation.id}/leaf", {"message_id": str(a1.id)}, content_type="application/json"
    )
    assert response.json()["conversation"]["current_leaf_id"] == str(a1.id)
    # choosing the question selects its newest answer
    client.post(f"/api/chat/conversations/{conversation.id}/leaf", {"message_id": str(q.id)}, content_type="application/json")
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == a2.id
    page = client.get(f"/c/{conversation.id}/")
    assert page.status_code == 200 and b"data-chat" in page.content


async def test_long_history_is_trimmed_with_a_notice(chat_config, user_a, open_socket, azure_simulator):
    user, client = user_a

    def seed():
        conversation = Conversation.objects.create(owner=user, model_key="small-window")
        parent = None
        for n in range(12):
            parent = Message.objects.create(conversation=conversation, parent=parent, role="user" if n % 2 == 0 else "assistant", content=f"turn {n} " + "word " * 60)
        conversation.current_leaf = parent
        conversation.save()
        return conversation

    conversation = await ado(seed)
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "n1", "text": "Newest [sim:report]", "conversation_id": str(conversation.id)})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    assert done["status"] == "complete" and "older message(s) were left out" in done["notice"]
    prompt = azure_simulator.requests(deployment="small-window")[-1]["json"]["messages"]
    assert prompt[-1]["content"] == "Newest [sim:report]" and 1 < len(prompt) < 13
    assert prompt[0]["content"] != "turn 0 " + "word " * 60


def test_provisional_title_is_short():
    from apps.chat.exchange import _provisional_title

    assert _provisional_title("Plan a trip to Rome") == "Plan a trip to Rome"
    assert _provisional_title("one two three four five six seven eight nine") == "one two three four five six seven eight…"
    long = _provisional_title("x" * 500)
    assert len(long) <= 80 and long.endswith("…")
