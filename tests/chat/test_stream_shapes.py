"""Stream shapes of other servers and gateways, and upstream failures, through the real websocket.

Each clean ending ([DONE] or the end of the body) is a complete answer with all its text, with or
without a finish reason; only a body cut off mid-chunk or a dropped connection is incomplete
(``interrupted``, text kept). The simulator sends each shape from a marker (apps/simulator).
"""

import pytest

from apps.chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)



async def ask(open_socket, client, text, model="gpt-4o"):
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "x", "text": text, "model": model})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=40)
    stored = await Message.objects.aget(id=answer["id"])
    return done, stored, socket


# [sim:echo] answers the question without its markers, in chunks of 1 to 8 words: the expected
# text is known whatever the shape markers.
ECHO = "[sim:echo]"
QUESTION = " ".join(f"word{i}" for i in range(40))


@pytest.mark.parametrize(
    ("shape", "finish_reason"),
    [
        ("[sim:shape finish=none]", ""),
        ("[sim:shape finish=delta]", "stop"),
        ("[sim:shape done=bare]", "stop"),
        ("[sim:shape done=none]", "stop"),
        ("[sim:shape finish=none done=none]", ""),
        ("[sim:shape finish=none done=bare]", ""),
    ],
)
async def test_clean_endings_are_complete_with_all_their_text(
    chat_config, user_a, open_socket, shape, finish_reason
):
    done, stored, socket = await ask(open_socket, user_a[1], f"{QUESTION} {ECHO} {shape}")
    assert done["status"] == "complete", done
    assert stored.status == "complete" and not stored.error_code
    assert stored.content == QUESTION == socket.text_of(str(stored.id))
    assert stored.finish_reason == finish_reason == done["finish_reason"]


async def test_a_body_cut_mid_chunk_is_interrupted_with_its_text(chat_config, user_a, open_socket):
    done, stored, socket = await ask(open_socket, user_a[1], f"{QUESTION} {ECHO} [sim:cut after=4]")
    assert done["status"] == "interrupted" == stored.status
    assert stored.error_code == "upstream_broken"
    assert "connection to Azure broke" in stored.error_message
    assert "text written before this is kept" in stored.error_message
    assert stored.content and stored.content == socket.text_of(str(stored.id))
    assert QUESTION.startswith(stored.content) and stored.content != QUESTION  # no "bro" piece


async def test_a_dropped_connection_after_text_is_interrupted_not_unreachable(
    chat_config, user_a, open_socket
):
    done, stored, socket = await ask(open_socket, user_a[1], "Tell me [sim:words 40] [sim:drop after=5]")
    assert done["status"] == "interrupted", done
    assert "connection to Azure broke" in done["error"]["message"]
    assert "could not reach" not in done["error"]["message"]
    assert stored.content and stored.content == socket.text_of(str(stored.id))


async def test_an_unknown_event_type_is_not_answer_text(chat_config, user_a, open_socket):
    done, stored, socket = await ask(open_socket, user_a[1], f"{QUESTION} {ECHO} [sim:foreign_event after=2]")
    assert done["status"] == "complete"
    assert "FOREIGN-EVENT-TEXT" not in stored.content + socket.text_of(str(stored.id))
    assert stored.content == QUESTION


async def test_a_filter_that_could_not_run_is_said_on_the_answer(chat_config, user_a, open_socket):
    done, stored, _ = await ask(open_socket, user_a[1], "Tell me [sim:words 40] [sim:filter_error]")
    assert done["status"] == "complete" and stored.content
    assert "content filter could not check this answer" in done["notice"]
    assert "The contents are not filtered" in stored.notice


async def test_a_short_rate_limit_wait_is_announced_then_retried(
    chat_config, user_a, open_socket, azure_simulator
):
    done, stored, socket = await ask(open_socket, user_a[1], "Soon [sim:words 40] [sim:429 retry_after=1 times=1]")
    assert done["status"] == "complete" and stored.content
    frames = [f["type"] for f in socket.frames if f.get("message_id") == str(stored.id)]
    retrying = [f for f in socket.frames if f["type"] == "retrying"]
    assert len(retrying) == 1, frames
    assert retrying[0]["status"] == 429 and retrying[0]["seconds"] == 1 and retrying[0]["attempt"] == 1
    assert "Azure is busy" in retrying[0]["message"] and "1 second" in retrying[0]["message"]
    assert frames.index("retrying") < frames.index("delta")
    assert len(azure_simulator.requests(deployment="gpt-4o")) == 2
