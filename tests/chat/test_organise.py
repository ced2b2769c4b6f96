"""Folders, pins and bulk archive/delete over HTTP: owner-scoped on every id, all-or-nothing,
clear 400s for bad input, and the sidebar's order (pinned first, then by date)."""

import uuid

import pytest

from apps.chat import organise
from apps.chat.models import Conversation, Folder, Message

pytestmark = pytest.mark.django_db


def post(client, path, body):
    return client.post(path, body, content_type="application/json")


def conversations(user, n, **fields):
    return [Conversation.objects.create(owner=user, model_key="gpt-4o", title=f"c{i}", **fields) for i in range(n)]


def test_folders_are_created_renamed_deleted_and_listed_per_owner(user_a, user_b):
    (alice, alice_client), (_, bob_client) = user_a, user_b
    created = post(alice_client, "/api/chat/folders/", {"name": "  Work   stuff "})
    assert created.status_code == 201
    folder = created.json()["folder"]
    assert folder["name"] == "Work stuff"
    assert post(alice_client, "/api/chat/folders/", {"name": "Work stuff"}).json() == {
        "error": "name: you have a folder called 'Work stuff' already."
    }
    assert post(alice_client, "/api/chat/folders/", {"name": ""}).json()["error"] == "name: a folder needs a name."
    assert post(alice_client, "/api/chat/folders/", {"name": "x" * 81}).json()["error"] == "name: at most 80 characters."
    assert post(alice_client, "/api/chat/folders/", {"name": 5}).status_code == 400
    assert bob_client.get("/api/chat/folders/").json() == {"folders": []}
    # Bob cannot rename or delete Alice's folder, nor list what is in it.
    assert post(bob_client, f"/api/chat/folders/{folder['id']}/rename", {"name": "mine"}).status_code == 404
    assert post(bob_client, f"/api/chat/folders/{folder['id']}/delete", {}).status_code == 404
    assert bob_client.get("/api/chat/conversations/", {"folder": folder["id"]}).status_code == 404
    assert bob_client.get("/api/chat/conversations/", {"folder": "not-an-id"}).status_code == 404
    renamed = post(alice_client, f"/api/chat/folders/{folder['id']}/rename", {"name": "Work"})
    assert renamed.json()["folder"]["name"] == "Work"
    assert [f["name"] for f in alice_client.get("/api/chat/folders/").json()["folders"]] == ["Work"]
    (conversation,) = conversations(alice, 1)
    post(alice_client, f"/api/chat/conversations/{conversation.id}/folder", {"folder_id": folder["id"]})
    assert post(alice_client, f"/api/chat/folders/{folder['id']}/delete", {}).status_code == 200
    conversation.refresh_from_db()
    assert conversation.folder_id is None  # the conversation stays, in no folder
    assert not Folder.objects.exists()


def test_folder_count_is_limited(user_a, settings, monkeypatch):
    alice, client = user_a
    monkeypatch.setattr(organise, "MAX_FOLDERS", 2)
    for name in ("a", "b"):
        assert post(client, "/api/chat/folders/", {"name": name}).status_code == 201
    refused = post(client, "/api/chat/folders/", {"name": "c"})
    assert refused.status_code == 400 and "2 folders already" in refused.json()["error"]


def test_moving_checks_both_the_conversation_and_the_folder(user_a, user_b):
    (alice, alice_client), (bob, bob_client) = user_a, user_b
    (mine,) = conversations(alice, 1)
    (his,) = conversations(bob, 1)
    my_folder = Folder.objects.create(owner=alice, name="Mine")
    his_folder = Folder.objects.create(owner=bob, name="His")
    before = Conversation.objects.get(id=mine.id).updated
    # Into Bob's folder: refused; Bob moving Alice's conversation: refused.
    assert post(alice_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": str(his_folder.id)}).json() == {"error": "No such folder."}
    assert post(alice_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": "garbage"}).status_code == 404
    assert post(bob_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": str(his_folder.id)}).status_code == 404
    assert post(bob_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": str(my_folder.id)}).status_code == 404
    assert post(alice_client, f"/api/chat/conversations/{his.id}/folder", {"folder_id": None}).status_code == 404
    assert post(alice_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": 3}).json() == {"error": "folder_id must be a folder id or null."}
    assert Conversation.objects.get(id=mine.id).folder_id is None
    assert Conversation.objects.get(id=his.id).folder_id is None
    moved = post(alice_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": str(my_folder.id)})
    assert moved.json()["conversation"]["folder_id"] == str(my_folder.id)
    listed = alice_client.get("/api/chat/conversations/", {"folder": str(my_folder.id)}).json()["items"]
    assert [c["id"] for c in listed] == [str(mine.id)]
    assert Conversation.objects.get(id=mine.id).updated == before  # not activity
    out = post(alice_client, f"/api/chat/conversations/{mine.id}/folder", {"folder_id": None})
    assert out.json()["conversation"]["folder_id"] is None


def test_pins_keep_conversations_first_and_are_owner_checked(user_a, user_b):
    (alice, client), (_, bob_client) = user_a, user_b
    old, middle, new = conversations(alice, 3)
    for i, conversation in enumerate((old, middle, new)):  # distinct dates, newest last
        Conversation.objects.filter(id=conversation.id).update(updated=conversation.updated.replace(year=2020 + i))
    order = lambda: [c["id"] for c in client.get("/api/chat/conversations/").json()["items"]]  # noqa: E731
    assert order() == [str(new.id), str(middle.id), str(old.id)]
    assert post(bob_client, f"/api/chat/conversations/{old.id}/pin", {"pinned": True}).status_code == 404
    assert post(client, f"/api/chat/conversations/{old.id}/pin", {"pinned": "yes"}).json() == {"error": "pinned must be true or false."}
    pinned = post(client, f"/api/chat/conversations/{old.id}/pin", {"pinned": True}).json()["conversation"]
    assert pinned["pinned"] is True and pinned["updated"].startswith("2020")
    assert order() == [str(old.id), str(new.id), str(middle.id)]
    post(client, f"/api/chat/conversations/{old.id}/pin", {"pinned": False})
    assert order() == [str(new.id), str(middle.id), str(old.id)]


def test_bulk_archive_and_delete_are_all_or_nothing(user_a, user_b):
    (alice, client), (bob, bob_client) = user_a, user_b
    mine = conversations(alice, 4)
    (his,) = conversations(bob, 1)
    Message.objects.create(conversation=mine[0], role="user", content="hi")
    ids = [str(c.id) for c in mine[:3]]
    # One of Bob's ids (or an unknown one) in the list: nothing at all changes.
    for intruder in (str(his.id), str(uuid.uuid4())):
        refused = post(client, "/api/chat/conversations/bulk", {"action": "delete", "ids": [*ids, intruder]})
        assert refused.status_code == 404 and "Nothing was changed" in refused.json()["error"]
        refused = post(client, "/api/chat/conversations/bulk", {"action": "archive", "ids": [*ids, intruder]})
        assert refused.status_code == 404
    assert Conversation.objects.filter(owner=alice, archived=False).count() == 4
    assert post(bob_client, "/api/chat/conversations/bulk", {"action": "delete", "ids": ids}).status_code == 404
    for body, message in [
        ({"action": "burn", "ids": ids}, "action must be one of archive, unarchive, delete."),
        ({"action": "delete"}, "ids: a list of one or more conversation ids."),
        ({"action": "delete", "ids": []}, "ids: a list of one or more conversation ids."),
        ({"action": "delete", "ids": "x"}, "ids: a list of one or more conversation ids."),
        ({"action": "delete", "ids": ["nope"]}, "ids: every id must be a conversation id."),
        ({"action": "delete", "ids": [str(uuid.uuid4())] * 501}, "ids: at most 500 conversations at once."),
    ]:
        response = post(client, "/api/chat/conversations/bulk", body)
        assert (response.status_code, response.json()) == (400, {"error": message}), body
    assert Conversation.objects.filter(owner=alice).count() == 4

    archived = post(client, "/api/chat/conversations/bulk", {"action": "archive", "ids": ids})
    assert archived.json() == {"action": "archive", "count": 3}
    assert {str(c["id"]) for c in client.get("/api/chat/conversations/", {"archived": 1}).json()["items"]} == set(ids)
    post(client, "/api/chat/conversations/bulk", {"action": "unarchive", "ids": ids[:1]})
    assert Conversation.objects.filter(owner=alice, archived=True).count() == 2
    deleted = post(client, "/api/chat/conversations/bulk", {"action": "delete", "ids": ids[:2] + ids[:1]})
    assert deleted.json() == {"action": "delete", "count": 2}
    assert set(Conversation.objects.filter(owner=alice).values_list("id", flat=True)) == {mine[2].id, mine[3].id}
    assert not Message.objects.filter(conversation_id=mine[0].id).exists()
    assert Conversation.objects.filter(id=his.id).exists()


@pytest.mark.django_db(transaction=True)
async def test_bulk_delete_stops_an_answer_being_written(chat_config, user_a, open_socket):
    from asgiref.sync import sync_to_async

    alice, client = user_a
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "b1", "text": "Long one [sim:words 2000] [sim:delay chunk=20]", "model": "gpt-4o"})
    answer = await socket.created_answer()
    await socket.until(lambda f: f["type"] == "delta")
    response = await sync_to_async(post)(client, "/api/chat/conversations/bulk", {"action": "delete", "ids": [answer["conversation_id"]]})
    assert response.json() == {"action": "delete", "count": 1}
    done = await socket.done(answer["id"], timeout=20)
    assert done["status"] == "stopped"
    assert not await Conversation.objects.filter(id=answer["conversation_id"]).aexists()
