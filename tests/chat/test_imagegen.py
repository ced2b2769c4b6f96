"""Image generation in the chat: an image model in the picker, and the generate_image tool.

Real ASGI app, real openai SDK over HTTP to the simulator (DALL-E 3, gpt-image-1, DALL-E 2 polling).
"""

import json

import pytest
import yaml

from apps.chat.models import Message
from apps.media.models import Attachment
from tests.chat.conftest import ado

pytestmark = pytest.mark.django_db(transaction=True)

DALLE2_VERSION = "2023-06-01-preview"


async def generate(socket, *, client_id, text, model, **extra):
    await socket.send({"type": "send", "client_id": client_id, "text": text, "model": model, **extra})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=60)
    frames = [f for f in socket.frames if f["type"] == "attachments" and f["message_id"] == answer["id"]]
    return answer, done, [a for f in frames for a in f["attachments"]]


def image_posts(sim, deployment):
    return [r for r in sim.requests(deployment) if r["method"] == "POST"]


async def test_dalle3_from_the_picker_with_its_options(chat_config, azure_simulator, user_a, open_socket):
    alice, client = user_a
    socket = await open_socket(client)
    answer, done, shown = await generate(
        socket, client_id="d3", text="a lighthouse at dusk", model="dall-e-3",
        image={"size": "1792x1024", "quality": "hd", "style": "natural"},
    )
    assert done["status"] == "complete", done
    (post,) = image_posts(azure_simulator, "dall-e-3")
    assert (post["json"]["size"], post["json"]["quality"], post["json"]["style"]) == ("1792x1024", "hd", "natural")
    assert post["json"]["prompt"] == "a lighthouse at dusk"
    (picture,) = shown
    assert picture["kind"] == "generated" and picture["download_url"].endswith("?download=1")
    assert picture["revised_prompt"].startswith("a lighthouse at dusk, rendered as")
    assert (picture["width"], picture["height"]) == (1792, 1024)
    stored = await Attachment.objects.aget(pk=picture["id"])
    assert (str(stored.message_id), stored.size, stored.quality, stored.style) == (
        answer["id"], "1792x1024", "hd", "natural"
    )
    response = await ado(client.get, picture["url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    # A reload shows it too.
    data = (await ado(client.get, f"/api/chat/conversations/{answer['conversation_id']}/")).json()
    reloaded = next(m for m in data["messages"] if m["id"] == answer["id"])
    assert [a["id"] for a in reloaded["attachments"]] == [picture["id"]]
    assert data["conversation"]["model_key"] == "dall-e-3"


async def test_gpt_image_1_b64_and_a_content_policy_block(chat_config, azure_simulator, user_a, open_socket):
    _, client = user_a
    socket = await open_socket(client)
    answer, done, shown = await generate(socket, client_id="g1", text="a paper crane", model="gpt-image-1",
                                         image={"quality": "low"})
    assert done["status"] == "complete" and len(shown) == 1
    (post,) = image_posts(azure_simulator, "gpt-image-1")
    assert post["json"]["quality"] == "low" and "response_format" not in post["json"]

    answer, done, shown = await generate(socket, client_id="g2", text="something forbidden",
                                         model="dall-e-3", conversation_id=answer["conversation_id"])
    assert done["status"] == "filtered" and shown == []
    assert done["error"]["code"] == "content_policy"
    assert "content" in done["error"]["message"].lower()
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.status == "filtered" and stored.error_code == "content_policy"


async def test_dalle2_polls(azure_simulator, activate_config, user_a, open_socket, settings):
    settings.CHAT_IDLE_TIMEOUT = 5
    azure_simulator.reset()
    await ado(activate_config, azure_simulator.config_yaml(
        titleConvo=False, summarize=False,
        image_models={"dall-e-2": {"deploymentName": "dall-e-2", "version": DALLE2_VERSION}},
    ))
    _, client = user_a
    socket = await open_socket(client)
    _, done, shown = await generate(socket, client_id="p1", text="a red kite", model="dall-e-2",
                                    image={"size": "256x256"})
    assert done["status"] == "complete", done
    assert (shown[0]["width"], shown[0]["height"]) == (256, 256)
    paths = [r["path"] for r in azure_simulator.requests()]
    assert "/openai/images/generations:submit" in paths
    assert any(p.startswith("/openai/operations/images/") for p in paths)


async def test_the_tool_call_makes_a_picture_and_the_answer_continues(
    chat_config, azure_simulator, user_a, open_socket, monkeypatch
):
    monkeypatch.setenv("DALLE3_SYSTEM_PROMPT", "Always draw in watercolour.")
    _, client = user_a
    socket = await open_socket(client)
    args = json.dumps({"prompt": "a fox in the snow"})
    answer, done, shown = await generate(
        socket, client_id="t1", text=f"Draw me a fox [sim:tool name=generate_image args={args}] [sim:report]",
        model="gpt-4o",
    )
    assert done["status"] == "complete", done
    first, follow_up = azure_simulator.requests("gpt-4o")
    tool = first["json"]["tools"][0]["function"]
    assert tool["name"] == "generate_image" and "watercolour" in tool["description"]
    assert set(tool["parameters"]["properties"]) == {"prompt", "size", "style"}
    (post,) = image_posts(azure_simulator, "dall-e-3")
    assert post["json"]["prompt"] == "a fox in the snow" and post["json"]["style"] == "vivid"
    messages = follow_up["json"]["messages"]
    assert [m["role"] for m in messages[-2:]] == ["assistant", "tool"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "generate_image"
    assert messages[-1]["content"].startswith("Image generated and shown to the user. Revised prompt: a fox")
    assert follow_up["json"]["tool_choice"] == "none"
    text = socket.text_of(answer["id"])
    report = json.loads(text.split("REPORT ", 1)[1])
    assert report["roles"][-2:] == ["assistant", "tool"], "the continuation answers the tool result"
    assert len(shown) == 1 and shown[0]["kind"] == "generated"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.content == text and await Attachment.objects.filter(message=stored).acount() == 1


async def test_no_tool_without_plugins(azure_simulator, activate_config, user_a, open_socket):
    azure_simulator.reset()
    await ado(activate_config, azure_simulator.config_yaml(titleConvo=False, summarize=False, plugins=False))
    _, client = user_a
    socket = await open_socket(client)
    _, done, shown = await generate(socket, client_id="np", text="Draw [sim:tool name=generate_image] [sim:report]",
                                    model="gpt-4o")
    assert done["status"] == "complete" and shown == []
    assert "tools" not in azure_simulator.requests("gpt-4o")[0]["json"]


async def test_legacy_dalle3_variables_in_the_picker(azure_simulator, activate_config, user_a, monkeypatch, open_socket):
    azure_simulator.reset()
    monkeypatch.setenv("DALLE3_BASEURL", f"{azure_simulator.url}/openai/deployments/dall-e-3")
    monkeypatch.setenv("DALLE3_API_KEY", azure_simulator.api_key)
    monkeypatch.setenv("DALLE3_AZURE_API_VERSION", "2024-02-01")
    config = yaml.safe_load(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    groups = config["endpoints"]["azureOpenAI"]["groups"]
    groups[:] = [g for g in groups if g["group"] != "simulator-images"]  # the file has no image model
    await ado(activate_config, yaml.safe_dump(config))
    _, client = user_a
    page = (await ado(client.get, "/")).content.decode()
    assert '<optgroup label="Image generation">' in page and 'value="dall-e-3"' in page
    assert azure_simulator.api_key not in page
    socket = await open_socket(client)
    _, done, shown = await generate(socket, client_id="l1", text="a legacy lantern", model="dall-e-3")
    assert done["status"] == "complete" and len(shown) == 1, done
