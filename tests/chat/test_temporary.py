"""Temporary chats through the real websocket: stored while a socket holds them, never listed,
gone with their images after the last socket closes (several tabs), usage rows kept; the sweep
for chats whose process died; nobody else can hold one."""

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.chat import temporary
from apps.chat.models import Conversation, Message, TemporaryHold, UsageRecord
from apps.media.models import Attachment
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)


async def until_gone(conversation_id, timeout=10):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await Conversation.objects.filter(pk=conversation_id).aexists():
        assert loop.time() < deadline, "the temporary chat was not deleted"
        await asyncio.sleep(0.05)


def add_image(conversation_id):
    """A stored image file (and its thumbnail) on the chat's first message."""
    conversation = Conversation.objects.get(pk=conversation_id)
    message = conversation.messages.filter(role="user").first()
    name = uuid.uuid4().hex
    folder = Path(settings.MEDIA_ROOT) / str(conversation.owner_id)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.thumb.png"]
    for path in paths:
        path.write_bytes(b"\x89PNG fake")
    Attachment.objects.create(
        owner_id=conversation.owner_id, conversation=conversation, message=message, kind="upload",
        path=f"{conversation.owner_id}/{name}.png", content_type="image/png", width=1, height=1,
        bytes=9, sha256="0" * 64,
    )
    return paths


async def test_stored_while_open_gone_after_last_socket_usage_kept(chat_config, user_a, open_socket):
    user, client = user_a
    first = await open_socket(client)
    await first.send({"type": "send", "client_id": "t1", "text": "Hello there", "model": "gpt-4o", "temporary": True})
    answer = await first.created_answer()
    updated = await first.until(lambda f: f["type"] == "conversation.updated")
    assert updated["conversation"]["temporary"] is True
    done = await first.done(answer["id"])
    assert done["status"] == "complete"
    cid = answer["conversation_id"]
    conversation = await Conversation.objects.aget(pk=cid)
    assert conversation.temporary and await Message.objects.filter(conversation_id=cid).acount() == 2
    files = await ado(add_image, cid)

    # Never listed, but its owner can open it while it lasts.
    listed = await ado(lambda: client.get("/api/chat/conversations/").json()["items"])
    assert listed == []
    assert (await ado(client.get, f"/api/chat/conversations/{cid}/")).status_code == 200

    # A second tab shows it (watch): closing the first tab keeps it.
    second = await open_socket(client)
    await second.send({"type": "watch", "conversation_id": cid})
    await second.send({"type": "ping"})
    await second.until(lambda f: f["type"] == "pong")
    assert not [f for f in second.frames if f["type"] == "error"]
    assert await TemporaryHold.objects.filter(conversation_id=cid).acount() == 2
    await first.close()
    await asyncio.sleep(0.3)
    assert await Conversation.objects.filter(pk=cid).aexists()

    # The last one closes: the chat, its messages and its files go; the usage row stays.
    await second.close()
    await until_gone(cid)
    assert not await Message.objects.filter(conversation_id=cid).aexists()
    assert not await TemporaryHold.objects.aexists()
    for _ in range(50):  # the files go once the delete's transaction has committed
        if not any(p.exists() for p in files):
            break
        await asyncio.sleep(0.05)
    assert not any(p.exists() for p in files)
    usage = await UsageRecord.objects.filter(user=user).aget()
    assert usage.conversation_id is None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert (await ado(client.get, f"/api/chat/conversations/{cid}/")).status_code == 404


async def test_an_answer_running_when_the_last_socket_goes_is_stopped_and_counted(chat_config, user_a, open_socket):
    user, client = user_a
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "t2", "text": "Long one [sim:words 2000] [sim:delay chunk=20]",
                       "model": "gpt-4o", "temporary": True})
    answer = await socket.created_answer()
    await socket.until(lambda f: f["type"] == "delta")
    await socket.close()
    await until_gone(answer["conversation_id"])
    from tests.chat.conftest import wait_for_generations

    await wait_for_generations()
    usage = await UsageRecord.objects.filter(user=user).aget()
    assert usage.conversation_id is None and usage.completion_tokens > 0


async def test_ordinary_chats_stay_and_others_cannot_hold(chat_config, user_a, user_b, open_socket):
    alice = await open_socket(user_a[1])
    await alice.send({"type": "send", "client_id": "n1", "text": "Keep me", "model": "gpt-4o"})
    kept = await alice.created_answer()
    await alice.done(kept["id"])
    await alice.send({"type": "send", "client_id": "t3", "text": "Forget me", "model": "gpt-4o", "temporary": True})
    answer = await alice.created_answer()
    await alice.done(answer["id"])
    bob = await open_socket(user_b[1])
    await bob.send({"type": "watch", "conversation_id": answer["conversation_id"]})
    error = await bob.until(lambda f: f["type"] == "error")
    assert error["code"] == "not_found"
    await bob.send({"type": "send", "client_id": "b1", "text": "x", "model": "gpt-4o", "temporary": "yes"})
    bad = await bob.until(lambda f: f["type"] == "error")
    assert bad["code"] == "bad_frame" and "send.temporary must be true or false" in bad["message"]
    listed = await ado(lambda: user_a[1].get("/api/chat/conversations/").json()["items"])
    assert [item["id"] for item in listed] == [kept["conversation_id"]]
    await alice.close()
    await until_gone(answer["conversation_id"])
    assert await Conversation.objects.filter(pk=kept["conversation_id"]).aexists()


def test_sweep_deletes_chats_only_a_dead_process_held(user_a, settings):
    user, _client = user_a
    old = timezone.now() - timedelta(seconds=settings.RATE_LIMIT_SLOT_TTL * 3)
    orphan = Conversation.objects.create(owner=user, model_key="m", temporary=True)
    alive = Conversation.objects.create(owner=user, model_key="m", temporary=True)
    young = Conversation.objects.create(owner=user, model_key="m", temporary=True)
    ordinary = Conversation.objects.create(owner=user, model_key="m")
    Conversation.objects.filter(pk__in=[orphan.pk, alive.pk, ordinary.pk]).update(created=old)
    TemporaryHold.objects.create(conversation=orphan, channel_name="dead", worker="gone:1", touched=old)
    TemporaryHold.objects.create(conversation=alive, channel_name="live", worker="here:1", touched=timezone.now())
    assert temporary.sweep_orphans() == 1
    assert set(Conversation.objects.values_list("pk", flat=True)) == {alive.pk, young.pk, ordinary.pk}
    # One process at its start: every hold is a dead one's.
    assert temporary.sweep_orphans(all_dead=True) == 2
    assert list(Conversation.objects.values_list("pk", flat=True)) == [ordinary.pk]
