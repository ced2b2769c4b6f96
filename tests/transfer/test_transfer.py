"""Export and import over HTTP: Lapis's JSON round-trips a branched conversation exactly; ChatGPT,
LibreChat and Open WebUI exports import with their branches; oversize and hostile files are
refused or cut down with the reason. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.test import Client

from apps.chat.models import Conversation, Message
from apps.media.views import MULTIPART_SLACK
from apps.transfer import importing
from project.bodies import body_limit
from tests.transfer.builders import branched_conversation

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures"


def user(name):
    return get_user_model().objects.create_user(name, password="Zebra-crossing-42!")


def client_of(someone):
    client = Client()
    client.force_login(someone)
    return client


def upload(client, data, name="export.json"):
    if isinstance(data, (dict, list)):
        data = json.dumps(data).encode()
    return client.post(
        "/transfer/", {"file": SimpleUploadedFile(name, data, content_type="application/json")},
        HTTP_ACCEPT="application/json",
    )


def normalised(document):
    """The export without ids and export time, each id replaced by its message's position."""
    document = json.loads(json.dumps(document))
    index = {m["id"]: position for position, m in enumerate(document["messages"])}
    conversation = document["conversation"]
    conversation.pop("id")
    conversation["current_leaf_id"] = index.get(conversation["current_leaf_id"])
    document.pop("exported")
    for message in document["messages"]:
        message["id"] = index[message["id"]]
        message["parent_id"] = index.get(message["parent_id"])
    return document


def tree(conversation):
    """{content: parent content} and the current leaf's content: the shape the chat shows."""
    messages = {m.id: m for m in conversation.messages.all()}
    shape = sorted((m.role, m.content, messages[m.parent_id].content if m.parent_id else None) for m in messages.values())
    return shape, conversation.current_leaf.content if conversation.current_leaf else None


def test_lapis_export_then_import_gives_the_same_tree_exactly():
    alice = user("alice")
    conversation, _ = branched_conversation(alice)
    client = client_of(alice)
    exported = client.get(f"/c/{conversation.pk}/export.json")
    assert exported.status_code == 200
    assert exported["Content-Disposition"].startswith("attachment;")
    first = json.loads(exported.content)
    assert first["format"] == "lapis.conversation" and len(first["messages"]) == 7
    report = upload(client, exported.content).json()
    assert report["source"] == "Lapis" and report["skipped"] == []
    (item,) = report["imported"]
    assert (item["messages"], item["branches"], item["left_out"]) == (7, 3, [])
    again = json.loads(client.get(f"/c/{item['id']}/export.json").content)
    assert normalised(again) == normalised(first)
    # And the same for another user importing it (ownership is the importer's).
    bob = user("bob")
    report = upload(client_of(bob), exported.content).json()
    copy = Conversation.objects.get(pk=report["imported"][0]["id"])
    assert copy.owner == bob
    assert normalised(json.loads(client_of(bob).get(f"/c/{copy.pk}/export.json").content)) == normalised(first)


def test_lapis_export_references_images_and_import_says_they_are_not_in_it():
    alice = user("alice")
    conversation, messages = branched_conversation(alice, with_image=True)
    document = json.loads(client_of(alice).get(f"/c/{conversation.pk}/export.json").content)
    (reference,) = document["messages"][0]["attachments"]
    assert reference["id"] == str(messages["image"].pk) and reference["sha256"] == messages["image"].sha256
    report = upload(client_of(alice), document).json()
    (entry,) = report["imported"][0]["left_out"]
    assert "references images" in entry["reason"]


def test_other_users_cannot_export_a_conversation():
    alice = user("alice")
    conversation, _ = branched_conversation(alice)
    mallory = client_of(user("mallory"))
    assert mallory.get(f"/c/{conversation.pk}/export.json").status_code == 404
    assert mallory.get(f"/c/{conversation.pk}/export.md").status_code == 404
    assert Client().get(f"/c/{conversation.pk}/export.json").status_code == 302


def test_markdown_export_is_the_current_branch_with_user_text_fenced():
    alice = user("alice")
    conversation, messages = branched_conversation(alice)
    Message.objects.filter(pk=messages["q2"].pk).update(content="Fence test ```` still text")
    body = client_of(alice).get(f"/c/{conversation.pk}/export.md").content.decode()
    assert body.startswith("# Harbour <b>plans</b>\n")
    assert "About 8 m at low tide." in body and "Eight metres." not in body and "How wide" not in body
    assert "`````text\nFence test ```` still text\n`````" in body


async def collect(chunks):
    return b"".join([chunk async for chunk in chunks])


def test_zip_of_all_conversations_is_streamed_with_json_markdown_and_images():
    alice = user("alice")
    first, messages = branched_conversation(alice, with_image=True)
    second, _ = branched_conversation(alice)
    second.archived = True
    second.save()
    branched_conversation(user("bob"))  # not Alice's
    response = client_of(alice).get("/transfer/export.zip")
    assert response.status_code == 200 and response.streaming
    assert response.is_async  # an async iterator: served chunk by chunk under ASGI
    archive = zipfile.ZipFile(io.BytesIO(async_to_sync(collect)(response.streaming_content)))
    names = archive.namelist()
    assert len([n for n in names if n.endswith(".json")]) == 2
    assert len([n for n in names if n.endswith(".md")]) == 2
    image = messages["image"]
    assert archive.read(f"images/{image.pk}.{image.extension}") == image.absolute().read_bytes()
    documents = [json.loads(archive.read(n)) for n in names if n.endswith(".json")]
    assert {d["conversation"]["id"] for d in documents} == {str(first.pk), str(second.pk)}
    # Each JSON in the zip imports back as it was.
    report = upload(client_of(alice), archive.read(next(n for n in names if str(first.pk) in n and n.endswith(".json")))).json()
    assert report["imported"][0]["branches"] == 3


def test_chatgpt_export_imports_with_its_branches():
    alice = user("alice")
    report = upload(client_of(alice), (FIXTURES / "chatgpt_conversations.json").read_bytes(), "conversations.json").json()
    assert report["source"] == "ChatGPT"
    tides, packing = report["imported"]
    assert (tides["title"], tides["messages"], tides["branches"]) == ("Tide tables for Bergen", 7, 3)
    reasons = {entry["what"]: entry["reason"] for entry in tides["left_out"]}
    assert "content type 'code' is not text" in reasons["message e4c3b5d7-0000-4000-8000-000000000005"]
    assert "role 'tool'" in reasons["message f5d4c6e8-0000-4000-8000-000000000006"]
    assert "image or file part" in reasons["message b7f6e8a0-0000-4000-8000-000000000008"]
    assert report["skipped"] == [{"title": "Only a tool ran", "reason": "it has no user or assistant message with text"}]
    conversation = Conversation.objects.get(pk=tides["id"])
    shape, leaf = tree(conversation)
    question = "When is high tide in Bergen tomorrow?"
    answer = "High tide in Bergen tomorrow is at **06:12** and **18:37** (Kartverket)."
    assert ("assistant", answer, question) in shape  # hung past the browsing call and its tool output
    assert ("user", "And what does this chart say?", answer) in shape
    assert ("user", "And low tide?", answer) in shape
    assert leaf == "Low tide is at **00:01** and **12:24**."  # current_node
    assert conversation.created.timestamp() == pytest.approx(1717400000.123456)
    by_content = {m.content: m for m in conversation.messages.all()}
    assert by_content["Low tide is at **00:01** and **12:24**."].model_key == "gpt-4o-mini"
    assert Conversation.objects.get(pk=packing["id"]).system_prompt == "You are a terse travel assistant."


def test_librechat_export_imports_with_its_branches():
    alice = user("alice")
    report = upload(client_of(alice), (FIXTURES / "librechat_export.json").read_bytes()).json()
    assert report["source"] == "LibreChat"
    (item,) = report["imported"]
    assert (item["title"], item["messages"], item["branches"]) == ("Regex for ISO dates", 5, 2)
    assert item["left_out"] == [
        {"what": "message 66666666-ffff-4fff-8fff-666666666666", "reason": "its author is unknown (no isCreatedByUser)"}
    ]
    conversation = Conversation.objects.get(pk=item["id"])
    assert conversation.system_prompt == "You write Python."
    anchored = conversation.messages.get(content__startswith="Use `^")
    assert anchored.reasoning == "Anchors matter." and anchored.model_key == "gpt-4o"
    assert conversation.current_leaf.content == "Add `T\\d{2}:\\d{2}(:\\d{2})?`."  # the newest leaf


def test_librechat_recursive_export_imports_its_tree():
    alice = user("alice")
    document = {
        "conversationId": "c1", "title": "Nested", "recursive": True,
        "messages": [{"messageId": "a", "isCreatedByUser": True, "text": "hi", "children": [
            {"messageId": "b", "isCreatedByUser": False, "text": "hello", "children": []},
            {"messageId": "c", "isCreatedByUser": False, "text": "hey", "children": [
                {"messageId": "d", "isCreatedByUser": True, "text": "more", "children": []}]},
        ]}],
    }
    (item,) = upload(client_of(alice), document).json()["imported"]
    assert (item["messages"], item["branches"]) == (4, 2)
    shape, _ = tree(Conversation.objects.get(pk=item["id"]))
    assert ("user", "more", "hey") in shape and ("assistant", "hello", "hi") in shape


def test_open_webui_export_imports_with_its_branches():
    alice = user("alice")
    report = upload(client_of(alice), (FIXTURES / "open_webui_export.json").read_bytes()).json()
    assert report["source"] == "Open WebUI"
    (item,) = report["imported"]
    assert (item["title"], item["messages"], item["branches"]) == ("Sourdough timing", 5, 2)
    conversation = Conversation.objects.get(pk=item["id"])
    assert conversation.system_prompt == "Be practical."
    assert conversation.current_leaf.content == "Bulk ferment 4–6 h at 24 °C."  # currentId
    shape, _ = tree(conversation)
    assert ("user", "And overnight in the fridge?", "Roughly **4 to 6 hours** of bulk fermentation, then shape.") in shape


def test_oversize_files_are_refused_with_the_limit(settings):
    settings.IMPORT_MAX_BYTES = 4096
    alice = user("alice")
    response = upload(client_of(alice), b"[" + b" " * 5000 + b"]")
    assert response.status_code == 413
    assert response.json()["error"] == "The file is 4.9 KB; the largest import is 4 KB (IMPORT_MAX_BYTES)."
    assert not Conversation.objects.exists()
    # The server refuses the body before reading it: the import address has its own cap.
    assert body_limit("/transfer/") == 4096 + MULTIPART_SLACK
    assert body_limit("/api/chat/conversations/") == settings.REQUEST_MAX_BYTES
    page = client_of(alice).get("/transfer/").content.decode()
    assert "At most 4 KB" in page


def test_files_that_are_not_exports_say_what_is_wrong():
    client = client_of(user("alice"))
    assert upload(client, b"{not json").json()["error"] == "The file is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2."
    assert "first object has the keys a, b" in upload(client, {"a": 1, "b": 2}).json()["error"]
    assert upload(client, b"\xff\xfe").json()["error"] == "The file is not UTF-8 text (byte 0)."
    assert upload(client, b"[" * 100_000 + b"]" * 100_000).status_code == 400
    assert upload(client, []).status_code == 400
    assert not Conversation.objects.exists()


def test_hostile_fields_are_text_capped_and_whitelisted():
    alice = user("alice")
    client = client_of(alice)
    script = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    huge = "x" * 200_001
    document = [
        {"title": f"<b>{script}</b>" + "t" * 500, "chat": {"history": {"currentId": "2", "messages": {
            "1": {"parentId": None, "role": "user", "content": script},
            "2": {"parentId": "1", "role": "assistant", "content": "**fine**"},
            "3": {"parentId": "1", "role": "developer", "content": "sneaky"},
            "4": {"parentId": "3", "role": "assistant", "content": "after an unknown role"},
            "5": {"parentId": "1", "role": {"$ne": 1}, "content": 7},
        }}}},
        {"title": "Huge", "chat": {"history": {"messages": {"1": {"parentId": None, "role": "user", "content": huge}}}}},
        {"title": "NUL", "chat": {"history": {"messages": {"1": {"parentId": None, "role": "user", "content": "a\u0000b"}}}}},
        {"title": "Loop", "chat": {"history": {"messages": {
            "1": {"parentId": "2", "role": "user", "content": "one"},
            "2": {"parentId": "1", "role": "assistant", "content": "two"}}}}},
        {"title": "Not an object", "chat": {"history": []}},
        "a string",
        {"title": "No chat at all"},
        {"title": "Odd fields", "chat": {"history": {"messages": {"1": {"parentId": None, "role": "user", "content": "x", "timestamp": [1]}}, "currentId": {"x": 1}}}},
    ]
    data = json.dumps(document).encode().replace(b"a\\u0000b", b"a\\u0000b")
    report = upload(client, data).json()
    item = report["imported"][0]
    conversation = Conversation.objects.get(pk=item["id"])
    assert len(conversation.title) == 200 and conversation.title.startswith("<b><script>")
    assert conversation.messages.get(role="user").content == script  # stored as text, verbatim
    assert set(conversation.messages.values_list("role", flat=True)) == {"user", "assistant"}
    # The answer under the unknown role hangs from that role's parent instead.
    hung = conversation.messages.get(content="after an unknown role")
    assert hung.parent.content == script
    reasons = [entry["reason"] for entry in item["left_out"]]
    assert "its role 'developer' is not user or assistant" in reasons
    assert "its role '' is not user or assistant" in reasons
    skipped = {entry["title"]: entry["reason"] for entry in report["skipped"]}
    assert skipped["Huge"] == "message 1 is longer than 200000 characters"
    assert skipped["NUL"] == "message 1 contains a NUL character (\\u0000)"
    assert skipped["Loop"] == "its messages' parent links form a loop"
    assert skipped["Not an object"] == "it has no 'chat.history.messages' object"
    assert skipped["item 6"] == "is not a JSON object"
    assert skipped["No chat at all"] == "it has no 'chat' object"
    assert Conversation.objects.filter(title="Odd fields").exists()  # unusable time and current id ignored
    assert Conversation.objects.count() == 2
    # The report page shows titles as text.
    page = client.post("/transfer/", {"file": SimpleUploadedFile("x.json", data)}).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_a_conversation_the_database_refuses_leaves_nothing_behind(monkeypatch):
    alice = user("alice")
    document = json.loads((FIXTURES / "chatgpt_conversations.json").read_text())
    original = importing._restamp
    calls = []

    def failing_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second conversation's messages are written, then this fails
            raise DatabaseError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(importing, "_restamp", failing_second)
    report = upload(client_of(alice), document).json()
    assert [i["title"] for i in report["imported"]] == ["Tide tables for Bergen"]
    assert report["skipped"][0] == {"title": "Packing list", "reason": "the database could not store it; nothing of it was kept"}
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 7


def test_an_unusable_import_limit_is_a_system_check_error(settings):
    from apps.transfer.checks import check_import_limit

    settings.IMPORT_MAX_BYTES = 10
    (error,) = check_import_limit()
    assert error.id == "lapis.E401" and "IMPORT_MAX_BYTES is 10" in error.msg
    settings.IMPORT_MAX_BYTES = 50 * 1024 * 1024
    assert check_import_limit() == []


def zipped(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_chatgpt_export_zip_and_lapis_zip_import_as_they_are():
    alice = user("alice")
    client = client_of(alice)
    chatgpt = zipped({
        "user.json": "{}", "chat.html": "<html></html>",
        "conversations.json": (FIXTURES / "chatgpt_conversations.json").read_bytes(),
    })
    report = upload(client, chatgpt, "export.zip").json()
    assert report["source"] == "ChatGPT" and len(report["imported"]) == 2
    # Lapis's zip of everything imports back: every conversation, every branch.
    conversation, _ = branched_conversation(alice)
    response = client.get("/transfer/export.zip")
    archive = async_to_sync(collect)(response.streaming_content)
    before = Conversation.objects.count()
    report = upload(client, archive, "lapis.zip").json()
    assert report["source"] == "Lapis" and len(report["imported"]) == before
    assert sorted(i["branches"] for i in report["imported"]) == sorted([3, 3, 1])


def test_a_zip_that_unpacks_over_the_limit_is_refused(settings):
    settings.IMPORT_MAX_BYTES = 64 * 1024
    client = client_of(user("alice"))
    bomb = zipped({"conversations.json": b"[" + b" " * (1024 * 1024) + b"]"})
    assert len(bomb) < 64 * 1024
    response = upload(client, bomb, "bomb.zip")
    assert response.status_code == 400
    assert response.json()["error"] == "Unpacked, the zip is larger than the largest import (64 KB)."
    other = upload(client, zipped({"notes.txt": "hi"}), "x.zip").json()["error"]
    assert other == "The zip holds neither a ChatGPT conversations.json nor a Lapis export's conversations/*.json."
    assert upload(client, b"PK\x03\x04 broken", "x.zip").json()["error"] == "The file looks like a zip but cannot be opened."
    assert not Conversation.objects.exists()


def test_a_deep_chain_of_left_out_nodes_is_walked_once():
    # 5,000 tool nodes in a chain, then 5,000 answers hanging from its end: linear, not quadratic.
    mapping = {"root": {"message": None, "parent": None, "children": []}}
    mapping["q"] = {"message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["go"]}}, "parent": "root"}
    parent = "q"
    for index in range(5000):
        mapping[f"t{index}"] = {"message": {"author": {"role": "tool"}, "content": {"content_type": "text", "parts": ["."]}}, "parent": parent}
        parent = f"t{index}"
    for index in range(5000):
        mapping[f"a{index}"] = {"message": {"author": {"role": "assistant"}, "content": {"content_type": "text", "parts": [f"answer {index}"]}}, "parent": parent}
    report = upload(client_of(user("alice")), [{"title": "Deep", "mapping": mapping}]).json()
    (item,) = report["imported"]
    assert (item["messages"], item["branches"]) == (5001, 5000)
    assert len(item["left_out"]) == 51  # 50 listed, the rest counted
    assert item["left_out"][-1] == {"what": "4950 more", "reason": "not listed"}
