"""The process's checkpoint writer (apps.chat.checkpoints): every running answer of the process
in one transaction per interval, at most one checkpoint per answer per interval."""

import time

import pytest

from apps.chat import checkpoints
from apps.chat.models import Conversation, Message
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)


class Answer:
    """What the writer reads of a Generation."""

    relayed_reasoning = ""

    def __init__(self, message_id):
        self.message_id = message_id
        self.seq, self.checkpointed_seq = 0, 0
        self.chunks = []
        self.last_write = time.monotonic()

    @property
    def relayed_text(self):
        return "".join(self.chunks)

    def relay(self, text):
        self.chunks.append(text)
        self.seq += 1


def streaming_messages(user, count):
    conversation = Conversation.objects.create(owner=user, model_key="gpt-4o")
    return [
        Message.objects.create(conversation=conversation, role="assistant", status="streaming").id
        for _ in range(count)
    ]


async def test_many_answers_are_checkpointed_in_one_transaction_per_interval(user_a, monkeypatch):
    batches = []
    real = checkpoints._write_batch

    def counted(updates, touches):
        batches.append((len(updates), len(touches)))
        return real(updates, touches)

    monkeypatch.setattr(checkpoints, "_write_batch", counted)
    ids = await ado(streaming_messages, user_a[0], 200)
    answers = [Answer(message_id) for message_id in ids]
    writer = checkpoints.writer()
    for answer in answers:
        writer.register(answer)
        answer.relay(f"text of {answer.message_id} ")
    # One tick: the one batch holds all 200 answers.
    await writer._checkpoint_all()
    assert batches == [(200, 0)]
    # Nothing new and no heartbeat due: no write at all.
    await writer._checkpoint_all()
    assert batches == [(200, 0)]
    answers[0].relay("more")
    await writer._checkpoint_all()
    assert batches[-1] == (1, 0)
    for answer in answers:
        writer.unregister(answer)
    await writer.drain()  # its task ends once nothing is registered
    stored = await ado(lambda: dict(Message.objects.filter(id__in=ids).values_list("id", "content")))
    assert all(stored[a.message_id] == a.relayed_text for a in answers)
    assert stored[answers[0].message_id].endswith("more")


async def test_a_final_message_is_never_overwritten_by_a_checkpoint(user_a):
    (message_id,) = await ado(streaming_messages, user_a[0], 1)
    answer = Answer(message_id)
    writer = checkpoints.writer()
    writer.register(answer)
    answer.relay("partial")
    assert await writer.finish(message_id, fields={"status": "complete", "content": "all of it", "seq": 2})
    await writer._checkpoint_all()  # a late batch (e.g. queued before the final write)
    writer.unregister(answer)
    await writer.drain()
    stored = await Message.objects.aget(id=message_id)
    assert (stored.status, stored.content, stored.seq) == ("complete", "all of it", 2)
    assert checkpoints.health() == "ok"
