"""Images in chat messages, through the real ASGI app and the openai SDK against the simulator."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.chat.models import Conversation, Message
from apps.media.images import create_upload
from apps.media.models import Attachment
from tests.chat.conftest import ado
from tests.media.imagefiles import png

pytestmark = pytest.mark.django_db(transaction=True)


def upload(user, *, width=64, height=48, name="photo.png"):
    return create_upload(owner=user, file=SimpleUploadedFile(name, png(width, height)))


def report_of(text):
    assert text.startswith("REPORT "), text
    return json.loads(text[len("REPORT ") :])


def image_parts(body):
    return [
        part
        for message in body["messages"]
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]


async def ask(socket, **frame):
    await socket.send({"type": "send", "client_id": frame.pop("client_id"), **frame})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    return answer, done


async def test_images_go_as_data_urls_with_the_detail_and_are_sent_again(
    chat_config, azure_simulator, user_a, open_socket
):
    alice, client = user_a
    first, second = await ado(upload, alice, width=1600, height=1200), await ado(upload, alice)
    socket = await open_socket(client)
    await socket.send(
        {"type": "send", "client_id": "v1", "text": "What is this? [sim:report]", "model": "gpt-4o",
         "attachments": [str(first.pk), str(second.pk)]}
    )
    question = (await socket.until(lambda f: f["type"] == "message.created"))["message"]
    assert [a["id"] for a in question["attachments"]] == [str(first.pk), str(second.pk)]
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    assert done["status"] == "complete", done
    report = report_of(socket.text_of(answer["id"]))
    assert (report["images"], report["details"]) == (2, ["auto", "auto"])
    (request,) = azure_simulator.requests("gpt-4o")
    parts = image_parts(request["json"])
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in parts)
    content = request["json"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this? [sim:report]"}

    # The conversation's detail setting applies, and the earlier images are sent again.
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    conversation.image_detail = "low"
    await conversation.asave(update_fields=["image_detail"])
    azure_simulator.reset()
    _, done = await ask(socket, client_id="v2", text="And now? [sim:report]",
                        conversation_id=str(conversation.id))
    report = report_of(socket.text_of(done["message_id"]))
    assert (report["images"], report["details"]) == (2, ["low", "low"])
    (request,) = azure_simulator.requests("gpt-4o")
    assert all(p["image_url"]["url"].startswith("data:image/") for p in image_parts(request["json"]))

    # On reload the message JSON carries its images.
    data = (await ado(client.get, f"/api/chat/conversations/{conversation.id}/")).json()
    shown = next(m for m in data["messages"] if m["id"] == question["id"])
    assert shown["attachments"][0]["thumbnail_url"].endswith(f"/{first.pk}/thumbnail/")


async def test_at_most_ten_images_per_request_newest_first(chat_config, azure_simulator, user_a, open_socket):
    alice, client = user_a
    socket = await open_socket(client)
    old = [await ado(upload, alice, width=20 + i) for i in range(6)]
    _, done = await ask(socket, client_id="m1", text="six", model="gpt-4o",
                        attachments=[str(a.pk) for a in old])
    conversation_id = (await Message.objects.aget(id=done["message_id"])).conversation_id
    new = [await ado(upload, alice, width=40 + i) for i in range(6)]
    azure_simulator.reset()
    _, done = await ask(socket, client_id="m2", text="six more [sim:report]",
                        conversation_id=str(conversation_id), attachments=[str(a.pk) for a in new])
    assert report_of(socket.text_of(done["message_id"]))["images"] == 10
    (request,) = azure_simulator.requests("gpt-4o")
    per_message = [
        sum(1 for p in m["content"] if p.get("type") == "image_url")
        for m in request["json"]["messages"] if isinstance(m["content"], list)
    ]
    assert per_message == [4, 6], "the newest message's images all go; the oldest are cut"


async def test_a_model_without_vision_hands_over_with_a_notice(chat_config, azure_simulator, user_a, open_socket):
    alice, client = user_a
    picture = await ado(upload, alice)
    socket = await open_socket(client)
    answer, done = await ask(socket, client_id="s1", text="Describe [sim:report]", model="gpt-35-turbo",
                             attachments=[str(picture.pk)])
    notice = "Answered by gpt-4o because gpt-35-turbo can't see images."
    assert answer["notice"] == notice and done["notice"] == notice
    assert answer["model_key"] == "gpt-4o"
    assert report_of(socket.text_of(answer["id"]))["deployment"] == "gpt-4o"
    assert azure_simulator.requests("gpt-35-turbo") == []
    stored = await Message.objects.select_related("conversation").aget(id=answer["id"])
    assert (stored.model_key, stored.deployment, stored.notice) == ("gpt-4o", "gpt-4o", notice)
    assert stored.conversation.model_key == "gpt-35-turbo", "the picker keeps the user's choice"


async def test_no_vision_model_is_a_clear_error_and_nothing_is_stored(
    azure_simulator, activate_config, user_a, open_socket
):
    await ado(
        activate_config,
        azure_simulator.config_yaml(
            titleConvo=False, summarize=False,
            chat_models={"gpt-35-turbo": {"deploymentName": "gpt-35-turbo", "vision": False}},
        ),
    )
    alice, client = user_a
    picture = await ado(upload, alice)
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "n1", "text": "Describe", "model": "gpt-35-turbo",
                       "attachments": [str(picture.pk)]})
    frame = await socket.receive()
    assert frame["type"] == "error" and frame["code"] == "no_vision_model", frame
    assert "gpt-35-turbo can't see images" in frame["message"]
    assert await Message.objects.acount() == 0 and await Conversation.objects.acount() == 0
    assert (await Attachment.objects.aget(pk=picture.pk)).message_id is None, "still free to use"


async def test_foreign_or_used_attachment_ids_are_refused(chat_config, user_a, user_b, open_socket):
    alice, client = user_a
    bob, _ = user_b
    bobs = await ado(upload, bob)
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "f1", "text": "look", "model": "gpt-4o",
                       "attachments": [str(bobs.pk)]})
    frame = await socket.receive()
    assert frame["code"] == "bad_attachment" and "was not found" in frame["message"], frame
    assert await Message.objects.acount() == 0
    assert (await Attachment.objects.aget(pk=bobs.pk)).message_id is None

    mine = await ado(upload, alice)
    await ask(socket, client_id="f2", text="look", model="gpt-4o", attachments=[str(mine.pk)])
    await socket.send({"type": "send", "client_id": "f3", "text": "again", "model": "gpt-4o",
                       "attachments": [str(mine.pk)]})
    frame = await socket.until(lambda f: f["type"] == "error")
    assert frame["code"] == "bad_attachment", "an upload goes with one message only"


async def test_edit_keeps_the_images(chat_config, azure_simulator, user_a, open_socket):
    alice, client = user_a
    picture = await ado(upload, alice)
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "e1", "text": "first", "model": "gpt-4o",
                       "attachments": [str(picture.pk)]})
    question = (await socket.until(lambda f: f["type"] == "message.created"))["message"]
    await socket.done((await socket.created_answer())["id"])
    azure_simulator.reset()
    await socket.send({"type": "edit", "message_id": question["id"], "text": "changed [sim:report]",
                       "client_id": "e2"})
    edited = (await socket.until(lambda f: f["type"] == "message.created"))["message"]
    assert len(edited["attachments"]) == 1 and edited["attachments"][0]["id"] != str(picture.pk)
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    assert report_of(socket.text_of(answer["id"]))["images"] == 1


async def test_deleting_a_conversation_deletes_its_files(chat_config, user_a, open_socket):
    alice, client = user_a
    picture = await ado(upload, alice)
    files = [picture.absolute(), picture.absolute(picture.variant_path("thumb"))]
    socket = await open_socket(client)
    _, done = await ask(socket, client_id="d1", text="keep this", model="gpt-4o",
                        attachments=[str(picture.pk)])
    conversation_id = (await Message.objects.aget(id=done["message_id"])).conversation_id
    assert all(path.exists() for path in files)
    response = await ado(client.post, f"/api/chat/conversations/{conversation_id}/delete",
                         data="{}", content_type="application/json")
    assert response.status_code == 200
    assert not await Attachment.objects.filter(pk=picture.pk).aexists()
    assert not any(path.exists() for path in files)
