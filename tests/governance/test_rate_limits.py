"""Rate limits per user through the real websocket (ASGI app) and the live simulator.

What must hold: a flood of ``send`` frames gets ``rate_limited`` errors saying when to retry and
costs no upstream call (nor a stored message) beyond the limit; answers running at once are
capped and their slot comes back however an answer ends; the socket cap refuses the next socket
with close code 4429; an admin's per-user or per-group row overrides the defaults.
"""

import asyncio
import time

import pytest
from django.contrib.auth.models import Group

from apps.chat.models import Conversation, Message
from apps.governance import ratelimits
from apps.governance.models import RateLimit
from tests.chat.conftest import ChatSocket, ado

pytestmark = pytest.mark.django_db(transaction=True)


def send_frame(n, text=None, conversation_id=None):
    return {
        "type": "send", "conversation_id": conversation_id, "client_id": f"c-{n}",
        "model": "gpt-4o", "text": text or f"question {n}",
    }


async def away_from_a_minute_edge():
    """The per-minute window is fixed (calendar minutes): start a flood well inside one."""
    if time.time() % 60 > 45:
        await asyncio.sleep(60 - time.time() % 60 + 0.2)


async def replies(socket, count, *, prefix=""):
    """Read frames until ``count`` sends (client ids starting with ``prefix``) were answered:
    (ids of the answers started, error frames). The user's other sockets' exchanges, which this
    socket hears of too, do not count."""
    started, refused, questions = [], [], set()
    while len(started) + len(refused) < count:
        frame = await socket.receive()
        if frame["type"] == "error":
            refused.append(frame)
        elif frame["type"] == "message.created":
            message = frame["message"]
            if message["role"] == "user" and (message["client_id"] or "").startswith(prefix):
                questions.add(message["id"])
            elif message["role"] == "assistant" and message["parent_id"] in questions:
                started.append(message["id"])
    return started, refused


async def finished(socket, answer_id):
    """The ``done`` frame of ``answer_id``, already received or still to come."""
    for frame in socket.frames:
        if frame["type"] == "done" and frame["message_id"] == answer_id:
            return frame
    return await socket.done(answer_id)


async def test_a_flood_of_sends_gets_rate_limited_and_costs_no_upstream_call(
    chat_config, user_a, open_socket, azure_simulator, settings
):
    settings.CHAT_ANSWERS_PER_MINUTE, settings.CHAT_ANSWERS_AT_ONCE = 5, 0
    settings.CHAT_IDLE_TIMEOUT = 15  # 300 frames on a loaded 2-core box: not a stall test
    socket = await open_socket(user_a[1])
    await away_from_a_minute_edge()
    for n in range(300):  # hundreds of frames at once from one socket
        await socket.send(send_frame(n))
    started, refused = await replies(socket, 300)
    assert len(started) == 5 and len(refused) == 295
    assert {f["code"] for f in refused} == {"rate_limited"}
    assert {f["limit"] for f in refused} == {"answers_per_minute"}
    assert all(1 <= f["retry_after"] <= 60 for f in refused)
    assert "Try again in" in refused[0]["message"]
    for answer_id in started:
        done = await finished(socket, answer_id)
        assert done["status"] == "complete", done.get("error")
    # Refused before anything was stored or sent: five answers, five requests, nothing more.
    assert len(azure_simulator.requests()) == 5
    assert await Conversation.objects.filter(owner=user_a[0]).acount() == 5
    assert await Message.objects.filter(conversation__owner=user_a[0]).acount() == 10


async def test_answers_at_once_are_capped_and_the_slot_returns_however_an_answer_ends(
    chat_config, user_a, open_socket, azure_simulator, settings
):
    settings.CHAT_ANSWERS_PER_MINUTE, settings.CHAT_ANSWERS_AT_ONCE = 0, 2
    socket = await open_socket(user_a[1])
    slow = "[sim:words 400] [sim:delay chunk=20]"
    for n in range(20):
        await socket.send(send_frame(n, text=f"slow {n} {slow}"))
    started, refused = await replies(socket, 20)
    assert len(started) == 2 and len(refused) == 18
    assert {f["limit"] for f in refused} == {"answers_at_once"}
    assert all(f["retry_after"] >= 1 for f in refused)
    assert len(azure_simulator.requests()) <= 2

    # Stopped: its slot is back, so the next send starts (the other one still runs).
    await socket.send({"type": "stop", "message_id": started[0]})
    assert (await finished(socket, started[0]))["status"] == "stopped"
    await socket.send(send_frame(100, text="[sim:error_event after=2] failing"))
    (failing,), () = await replies(socket, 1)
    assert (await finished(socket, failing))["status"] in ("error", "interrupted")
    # Ended in an error: its slot is back too.
    await socket.send(send_frame(101, text="quick one"))
    (quick,), () = await replies(socket, 1)
    assert (await finished(socket, quick))["status"] == "complete"
    # Still one slow answer running + the quick one done: one more may start, not two.
    await socket.send(send_frame(102, text=f"slow again {slow}"))
    await socket.send(send_frame(103, text="one too many"))
    started_now, refused_now = await replies(socket, 2)
    assert len(started_now) == 1 and [f["limit"] for f in refused_now] == ["answers_at_once"]
    for answer_id in (started[1], *started_now):
        await socket.send({"type": "stop", "message_id": answer_id})
        await finished(socket, answer_id)
    # Completed, stopped or failed: every slot is free again.
    assert not [key for key in ratelimits._held if f":{user_a[0].pk}:" in key and "running" in key]


async def test_the_socket_cap_refuses_the_next_socket_with_a_close_code(
    chat_config, user_a, user_b, open_socket, settings
):
    settings.CHAT_SOCKETS_PER_USER = 2
    first = await open_socket(user_a[1])
    await open_socket(user_a[1])
    third = ChatSocket(user_a[1])
    connected, _ = await third.communicator.connect()
    assert connected  # accepted only to say why
    frame = await third.communicator.receive_json_from(timeout=10)
    assert (frame["type"], frame["code"], frame["limit"]) == ("error", "rate_limited", "sockets")
    assert "2 Lapis tabs" in frame["message"]
    closed = await third.communicator.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 4429, "reason": "too many open sockets"}
    # Another user is not affected; and a closed socket gives its place back.
    await open_socket(user_b[1])
    await first.close()
    again = await open_socket(user_a[1])
    await again.send({"type": "ping"})
    assert (await again.receive())["type"] == "pong"


async def test_an_admins_user_row_overrides_the_groups_and_the_groups_the_defaults(
    chat_config, user_a, user_b, open_socket, azure_simulator, settings
):
    settings.CHAT_ANSWERS_PER_MINUTE, settings.CHAT_ANSWERS_AT_ONCE = 1, 0
    team = await Group.objects.acreate(name="team")  # groups come from company sign-in too
    await ado(user_a[0].groups.add, team)
    await ado(user_b[0].groups.add, team)
    await RateLimit.objects.acreate(group=team, answers_per_minute=3)
    await RateLimit.objects.acreate(group=await Group.objects.acreate(name="small"), answers_per_minute=2)
    await RateLimit.objects.acreate(user=user_b[0], answers_per_minute=2)
    limits = await ado(ratelimits.limits_for, user=user_a[0])
    assert (limits.answers_per_minute, limits.answers_at_once) == (3, 0)
    await away_from_a_minute_edge()
    for user, expected in ((user_a, 3), (user_b, 2)):
        socket = await open_socket(user[1])
        for n in range(10):
            await socket.send(send_frame(f"{user[0].username}-{n}"))
        started, refused = await replies(socket, 10)
        assert len(started) == expected and len(refused) == 10 - expected
        for answer_id in started:
            await finished(socket, answer_id)
    assert len(azure_simulator.requests()) == 5


async def test_a_dead_process_slot_expires_and_a_live_one_is_kept(db, settings):
    settings.RATE_LIMIT_SLOT_TTL = 3
    dead = await ratelimits._claim("running", 999_001, 1)
    ratelimits._held.pop(dead.key)  # its process died: nobody refreshes or releases it
    live = await ratelimits._claim("running", 999_002, 1)
    await asyncio.sleep(4.5)  # past the TTL; the refresher touched the live slot every second
    assert await ratelimits._claim("running", 999_001, 1) is not None
    assert await ratelimits._claim("running", 999_002, 1) is None
    live.release()
    assert await ratelimits._claim("running", 999_002, 1) is not None
