"""How many SQL statements one exchange costs (issue 11): counted, never timed.

Every statement of every thread (Channels' database thread, the checkpoint writer's thread) is
counted by wrapping Django's cursor, from the send frame to ``done`` of a short answer.
"""

import threading

import pytest
from django.db.backends import utils

from apps.chat.models import Message
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)

# Measured on SQLite: 14 for a first message in a new conversation: the socket's check that its
# session is still signed in (2: session and user, on every frame), the send's transaction (8 with
# its BEGIN: the owner's lock, the repeat check, the budgets that apply (apps.governance.quotas),
# the conversation, both messages, the current leaf), nothing more before the upstream request (a
# new conversation's branch is its question: no branch, image or summary read, see
# apps.chat.preparation) and the final write with its usage (4, one transaction). The bound keeps
# it from growing back; a longer answer adds its share of one batched checkpoint transaction per
# second.
MAX_STATEMENTS = 15


@pytest.fixture
def statements(monkeypatch):
    seen, lock = [], threading.Lock()
    original, original_many = utils.CursorWrapper.execute, utils.CursorWrapper.executemany

    def execute(self, sql, params=None):
        with lock:
            seen.append(sql)
        return original(self, sql, params)

    def executemany(self, sql, param_list):
        with lock:
            seen.append(sql)
        return original_many(self, sql, param_list)

    monkeypatch.setattr(utils.CursorWrapper, "execute", execute)
    monkeypatch.setattr(utils.CursorWrapper, "executemany", executemany)
    return seen


async def test_one_exchange_costs_a_bounded_number_of_statements(chat_config, user_a, open_socket, statements):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "ping"})
    await socket.until(lambda f: f["type"] == "pong")
    statements.clear()
    await socket.send({"type": "send", "client_id": "count-1", "text": "Hello [sim:words 5]", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    # The registry's look at the active config version (at most once a second, in any request)
    # is not part of an exchange: it lands inside the window or not by the clock.
    counted = [sql for sql in statements if '"azure_configversion"' not in sql]
    count = len(counted)
    print(f"SQL statements for one exchange (send to done): {count}")
    assert 0 < count <= MAX_STATEMENTS, "\n".join(counted)
    stored = await ado(Message.objects.get, id=answer["id"])
    assert stored.status == "complete"


# A follow-up in an existing conversation: the first exchange's statements plus the send's reads
# of that conversation (the conversation, a stale-answer sweep, the busy check, the branch and
# its images for the vision rule) and, in the same thread call after the commit, the reads the
# answer's prompt needs (the branch, its uploads, its summary checkpoint: apps.chat.preparation).
MAX_FOLLOW_UP_STATEMENTS = 22


async def test_a_follow_up_costs_a_bounded_number_of_statements(chat_config, user_a, open_socket, statements):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "count-2a", "text": "Hello [sim:words 5]", "model": "gpt-4o"})
    first = await socket.created_answer()
    await socket.done(first["id"])
    statements.clear()
    await socket.send({
        "type": "send", "client_id": "count-2b", "text": "And then? [sim:words 5]",
        "conversation_id": first["conversation_id"],
    })
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    counted = [sql for sql in statements if '"azure_configversion"' not in sql]
    print(f"SQL statements for a follow-up exchange (send to done): {len(counted)}")
    assert 0 < len(counted) <= MAX_FOLLOW_UP_STATEMENTS, "\n".join(counted)
    stored = await ado(Message.objects.select_related("parent").get, id=answer["id"])
    assert stored.status == "complete" and str(stored.parent.parent_id) == first["id"]
