"""Two sends at once: one conversation has one answer being written, a client id starts one.

The socket test goes through the real ASGI app. In one process channels runs the consumers'
database work on one thread, so the service tests also call the services from two real threads
(each with its own database connection) released together by a barrier: that is what two
Daphne processes do, and it is the row lock in ``apps.chat.exchange`` that must hold.
"""

import threading

import pytest
from django.db import connection

from apps.chat.exchange import ExchangeRefused, send_message
from apps.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

# The SQLite test database lives in memory with a shared cache, whose table locks fail a second
# writer at once ("table is locked") instead of queueing it on the busy timeout as the server's
# file database does; the threaded tests need a real database (the PostgreSQL profile).
needs_real_database = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="threads need a file or server database, not in-memory SQLite"
)


def _at_once(*calls):
    """Run the calls on their own threads, released together; return results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 (the test inspects what each call raised)
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


async def test_two_sockets_sending_at_once_start_one_answer(chat_config, user_a, open_socket, azure_simulator):
    first, second = await open_socket(user_a[1]), await open_socket(user_a[1])
    await first.send({"type": "send", "client_id": "c0", "text": "Start", "model": "gpt-4o"})
    opening = await first.created_answer()
    await first.done(opening["id"])
    azure_simulator.reset()
    sockets = {"c1": first, "c2": second}
    for client_id, socket in sockets.items():
        await socket.send({
            "type": "send", "client_id": client_id, "conversation_id": opening["conversation_id"],
            "text": f"At once {client_id} [sim:words 200] [sim:delay chunk=10]",
        })
    # Every socket of the user hears of the exchange that started, whichever socket sent it.
    question = (await first.until(
        lambda f: f["type"] == "message.created" and f["message"]["client_id"] in sockets
    ))["message"]
    winner = sockets.pop(question["client_id"])
    loser = sockets.popitem()[1]
    refused = next((f for f in loser.frames if f["type"] == "error"), None)
    refused = refused or await loser.until(lambda f: f["type"] == "error")
    assert refused["code"] == "busy" and "still being written" in refused["message"]
    answer = await winner.until(
        lambda f: f["type"] == "message.created" and f["message"]["parent_id"] == question["id"]
    )
    done = await winner.done(answer["message"]["id"])
    assert done["status"] == "complete"
    assert len(azure_simulator.requests(deployment="gpt-4o")) == 1
    assert await Message.objects.acount() == 4  # the opening exchange and the one that started


@needs_real_database
def test_two_processes_sending_to_one_conversation_start_one_answer(chat_config, user_a):
    user = user_a[0]
    conversation = Conversation.objects.create(owner=user, model_key="gpt-4o")

    def send(client_id):
        return lambda: send_message(
            user=user, client_id=client_id, text="At once", conversation_id=conversation.id
        )

    results = _at_once(send("p1"), send("p2"))
    started = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(started) == 1 and started[0].created, results
    assert len(refused) == 1 and isinstance(refused[0], ExchangeRefused), results
    assert refused[0].code == "busy"
    assert Message.objects.filter(status=Message.Status.STREAMING).count() == 1
    assert Message.objects.count() == 2  # one question, one answer: the refused send left nothing


@needs_real_database
def test_two_processes_repeating_a_new_conversations_client_id_make_one_exchange(chat_config, user_a):
    user = user_a[0]

    def send():
        return send_message(user=user, client_id="same", text="Hello", model_key="gpt-4o")

    results = _at_once(send, send)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert {r.assistant_message.id for r in results} == {results[0].assistant_message.id}
    assert sorted(r.created for r in results) == [False, True]
    assert Conversation.objects.count() == 1 and Message.objects.count() == 2
