"""Send, stream, stop, resume and idempotency through the real ASGI app against the simulator."""

import pytest

from apps.chat.models import Message
from tests.chat.conftest import ado, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)


async def test_send_streams_deltas_then_done_and_saves_once(chat_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "c1", "text": "Hello there [sim:words 60] [sim:delay chunk=10]", "model": "gpt-4o"})
    question = await socket.until(lambda f: f["type"] == "message.created")
    assert question["message"]["role"] == "user"
    answer = await socket.created_answer()
    assert answer["status"] == "streaming"
    done = await socket.done(answer["id"])
    assert done["status"] == "complete" and done["finish_reason"] == "stop"
    deltas = [f for f in socket.frames if f["type"] == "delta"]
    assert len(deltas) >= 2, "the answer should arrive in pieces"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.status == "complete"
    assert stored.content == socket.text_of(answer["id"]) and len(stored.content) > 100
    assert stored.seq == done["seq"] == deltas[-1]["seq"]
    assert (stored.group, stored.deployment, stored.model_key) == (stored.group, "gpt-4o", "gpt-4o")
    log = azure_simulator.requests(deployment="gpt-4o")
    assert len(log) == 1 and log[0]["outcome"] == "completed"
    assert log[0]["json"]["messages"][-1] == {"role": "user", "content": "Hello there [sim:words 60] [sim:delay chunk=10]"}


async def test_stop_mid_stream_keeps_partial_text_and_closes_upstream(chat_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "s1", "text": "Long one [sim:words 2000] [sim:delay chunk=20]", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.until(lambda f: f["type"] == "delta" and f["seq"] >= 2)
    await socket.send({"type": "stop", "message_id": answer["id"]})
    done = await socket.done(answer["id"])
    assert done["status"] == "stopped"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.status == "stopped" and stored.content and stored.content == socket.text_of(answer["id"])
    await wait_for_generations()
    outcomes = [r["outcome"] for r in azure_simulator.requests(deployment="gpt-4o")]
    assert outcomes == ["client_disconnected"]


async def test_disconnect_then_resume_on_a_new_socket_gives_the_exact_text(chat_config, user_a, open_socket):
    first = await open_socket(user_a[1])
    await first.send({"type": "send", "client_id": "r1", "text": "Tell me [sim:words 400] [sim:delay chunk=8]", "model": "gpt-4o-mini"})
    answer = await first.created_answer()
    await first.until(lambda f: f["type"] == "delta" and f["seq"] >= 3)
    seen = first.text_of(answer["id"])
    await first.close()  # the generation goes on without any socket

    second = await open_socket(user_a[1])
    last_seq = max(f["seq"] for f in first.frames if f["type"] == "delta")
    await second.send({"type": "resume", "message_id": answer["id"], "seq": last_seq})
    snapshot = await second.until(lambda f: f["type"] == "snapshot")
    assert snapshot["text"].startswith(seen)
    done = await second.done(answer["id"])
    assert done["status"] == "complete"
    stored = await Message.objects.aget(id=answer["id"])
    assert second.text_of(answer["id"]) == stored.content
    assert len(stored.content) > len(seen)


async def test_resume_of_a_finished_answer_sends_its_final_state(chat_config, user_a, open_socket):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "f1", "text": "Short", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    socket.frames.clear()
    await socket.send({"type": "resume", "message_id": answer["id"], "seq": 0})
    done = await socket.done(answer["id"])
    stored = await Message.objects.aget(id=answer["id"])
    assert done["status"] == "complete" and socket.text_of(answer["id"]) == stored.content


async def test_repeated_client_id_starts_one_generation(chat_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    frame = {"type": "send", "client_id": "dup-1", "text": "Once only [sim:delay chunk=5]", "model": "gpt-4o"}
    await socket.send(frame)
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    await socket.send({**frame, "conversation_id": answer["conversation_id"]})
    again = await socket.created_answer()
    assert again["id"] == answer["id"]
    await socket.done(answer["id"])
    await socket.send(frame)  # the same id without a conversation: still the same exchange
    assert (await socket.created_answer())["id"] == answer["id"]
    await socket.done(answer["id"])
    assert len(azure_simulator.requests(deployment="gpt-4o")) == 1
    assert await Message.objects.acount() == 2


async def test_second_send_while_streaming_is_refused_as_busy(chat_config, user_a, open_socket):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "b1", "text": "First [sim:words 300] [sim:delay chunk=10]", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.send({"type": "send", "client_id": "b2", "text": "Second", "conversation_id": answer["conversation_id"]})
    error = await socket.until(lambda f: f["type"] == "error")
    assert error["code"] == "busy" and "still being written" in error["message"]
    await socket.send({"type": "stop", "message_id": answer["id"]})
    await socket.done(answer["id"])


async def test_regenerate_and_edit_make_sibling_branches(chat_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "t1", "text": "Root question [sim:report]", "model": "gpt-4o", })
    first = await socket.created_answer()
    await socket.done(first["id"])
    await socket.send({"type": "regenerate", "message_id": first["id"], "client_id": "t2"})
    second = await socket.created_answer()
    await socket.done(second["id"])
    assert second["parent_id"] == first["parent_id"]
    question = await Message.objects.aget(id=first["parent_id"])
    await socket.send({"type": "edit", "message_id": str(question.id), "text": "Changed [sim:echo]", "client_id": "t3"})
    edited_q = await socket.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "user")
    assert edited_q["message"]["parent_id"] == question.parent_id is None
    third = await socket.created_answer()
    await socket.done(third["id"])
    stored = await Message.objects.aget(id=third["id"])
    assert stored.content == "Changed"
    conversation = await ado(lambda: stored.conversation)
    assert conversation.current_leaf_id == stored.id
    # the edited branch's prompt holds only the edited question, not the first branch
    prompt = azure_simulator.requests(deployment="gpt-4o")[-1]["json"]["messages"]
    assert [m["content"] for m in prompt] == ["Changed [sim:echo]"]
