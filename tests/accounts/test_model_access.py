"""Model access rules: parsed from the YAML, answered by the registry, enforced on every path
that reaches a model (HTTP views and every websocket frame), over the real ASGI app and the
openai SDK against the simulator."""

import json

import pytest
import yaml
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.azure import access
from apps.azure.config import parse_config
from apps.chat.models import Conversation, Message
from apps.media.images import create_upload
from tests.chat.conftest import ado, make_user_and_client
from tests.media.imagefiles import png

pytestmark = pytest.mark.django_db(transaction=True)


def restricted_yaml(simulator, **overrides):
    """The simulator's config with: gpt-4o for "premium" only (model rule), gpt-35-turbo and
    small-window for everyone, gpt-4o-mini for "premium" or "basic"; the image group for
    "artists" (group rule) except gpt-image-1, open to everyone."""
    data = yaml.safe_load(simulator.config_yaml(titleConvo=False, summarize=False, **overrides))
    chat, images = data["endpoints"]["azureOpenAI"]["groups"][:2]
    chat["models"]["gpt-4o"]["access"] = ["premium"]
    chat["models"]["gpt-4o-mini"]["access"] = ["premium", "basic"]
    images["access"] = ["artists"]
    images["models"]["gpt-image-1"]["access"] = ["*"]
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def restricted(azure_simulator, activate_config, settings):
    settings.CHAT_IDLE_TIMEOUT = 5
    azure_simulator.reset()
    return activate_config(restricted_yaml(azure_simulator))


def member(username, *groups):
    user, client = make_user_and_client(username)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user, client


# ------------------------------------------------------------------------------- the config
def test_access_lists_at_group_and_model_level(azure_simulator):
    result = parse_config(restricted_yaml(azure_simulator))
    assert result.ok, result.errors
    models = {m.key: m for m in result.config.models()}
    assert models["gpt-4o"].access == ("premium",)
    assert models["gpt-35-turbo"].access is None
    from apps.azure.registry import registry_from_text

    registry = registry_from_text(restricted_yaml(azure_simulator))
    assert registry.get("dall-e-3").access == ("artists",)
    assert registry.get("gpt-35-turbo").access is None


@pytest.mark.parametrize(("value", "message"), [
    ("[]", "access: [] would let nobody use it"),
    ("{a: 1}", "access must be a list of group names"),
    ("[premium, 3]", "access must be a list of group names"),
])
def test_bad_access_lists_are_errors_with_their_line(value, message):
    text = f"""endpoints:
  azureOpenAI:
    groups:
      - group: g
        apiKey: k
        instanceName: i
        version: "2024-10-21"
        models:
          gpt-4o:
            deploymentName: d
            access: {value}
"""
    result = parse_config(text)
    (problem,) = [p for p in result.errors if "access" in p.path]
    assert message in problem.message and problem.line == 11
    assert problem.path.endswith("models.gpt-4o.access")


def test_the_registry_answers_models_for_a_user(restricted):
    basic, _ = member("bea", "basic")
    nobody, _ = member("ned")
    keys = lambda user: [s.key for s in restricted.for_user(user).all_models()]  # noqa: E731
    assert keys(basic) == ["gpt-4o-mini", "gpt-35-turbo", "small-window", "gpt-image-1"]
    assert keys(nobody) == ["gpt-35-turbo", "small-window", "gpt-image-1"]
    explained = {row["key"]: row for row in access.explain(user=basic, registry=restricted)}
    assert explained["gpt-4o"]["allowed"] is False and explained["gpt-4o"]["why"] == "needs one of premium"
    assert explained["gpt-4o-mini"]["why"] == "member of basic"
    assert explained["small-window"]["why"] == "no access rule: everyone"


# ------------------------------------------------------------------------------- HTTP views
def test_models_page_and_picker_list_only_the_users_models(restricted):
    _, client = member("bea", "basic")
    page = client.get("/models/").content.decode()
    assert 'data-key="gpt-4o-mini"' in page and 'data-key="gpt-4o"' not in page
    assert 'data-key="dall-e-3"' not in page and 'data-key="gpt-image-1"' in page
    chat = client.get("/").content.decode()
    assert 'value="gpt-4o-mini"' in chat and 'value="gpt-4o"' not in chat
    assert 'value="dall-e-3"' not in chat


def test_settings_refuse_a_model_the_user_may_not_use(restricted):
    user, client = member("bea", "basic")
    conversation = Conversation.objects.create(owner=user, model_key="gpt-35-turbo")
    response = client.post(
        f"/api/chat/conversations/{conversation.id}/settings",
        data=json.dumps({"model_key": "gpt-4o"}), content_type="application/json",
    )
    assert response.status_code == 400
    assert "may not use the model 'gpt-4o'" in response.json()["error"]
    conversation.refresh_from_db()
    assert conversation.model_key == "gpt-35-turbo"


# ------------------------------------------------------------------------------- websocket
async def refused(socket, frame):
    await socket.send(frame)
    error = await socket.until(lambda f: f["type"] == "error")
    assert error["code"] == "model_not_allowed", error
    assert "Pick another model, or ask an admin for access" in error["message"]
    return error


async def test_every_frame_type_refuses_a_model_the_user_may_not_use(restricted, azure_simulator, open_socket):
    user, client = await ado(member, "bea", "basic")
    socket = await open_socket(client)
    await refused(socket, {"type": "send", "client_id": "s1", "text": "hi", "model": "gpt-4o"})
    await refused(socket, {"type": "send", "client_id": "s2", "text": "a cat", "model": "dall-e-3",
                           "image": {"size": "1024x1024"}})
    # A conversation whose model the user lost (or got by id): send, regenerate and edit refuse.
    conversation = await Conversation.objects.acreate(owner=user, model_key="gpt-4o")
    question = await Message.objects.acreate(conversation=conversation, role="user", content="q")
    answer = await Message.objects.acreate(conversation=conversation, role="assistant", parent=question,
                                           content="a", status="complete")
    await refused(socket, {"type": "send", "client_id": "s3", "text": "more",
                           "conversation_id": str(conversation.id)})
    await refused(socket, {"type": "regenerate", "client_id": "r1", "message_id": str(answer.id)})
    await refused(socket, {"type": "edit", "client_id": "e1", "message_id": str(question.id), "text": "q2"})
    assert await Message.objects.filter(conversation=conversation).acount() == 2, "nothing stored"
    assert azure_simulator.requests() == [], "no request reached a model"
    # An allowed model still answers on the same socket.
    await socket.send({"type": "send", "client_id": "ok", "text": "hello [sim:echo]", "model": "gpt-4o-mini"})
    created = await socket.created_answer()
    assert (await socket.done(created["id"]))["status"] == "complete"


async def test_the_vision_stand_in_is_only_a_model_the_user_may_use(restricted, azure_simulator, open_socket):
    user, client = await ado(member, "bea", "basic")
    photo = await ado(create_upload, owner=user, file=SimpleUploadedFile("p.png", png(32, 32)))
    socket = await open_socket(client)
    # gpt-35-turbo can't see images; the first vision model (gpt-4o) is premium only, so the
    # stand-in is gpt-4o-mini, which "basic" may use.
    await socket.send({"type": "send", "client_id": "v1", "text": "what is it?", "model": "gpt-35-turbo",
                       "attachments": [str(photo.pk)]})
    created = await socket.created_answer()
    await socket.done(created["id"])
    message = await Message.objects.aget(id=created["id"])
    assert message.model_key == "gpt-4o-mini" and "gpt-4o-mini" in message.notice
    assert [r["deployment"] for r in azure_simulator.requests()] == ["gpt-4o-mini"]


async def test_no_allowed_vision_model_refuses_clearly(restricted, open_socket):
    user, client = await ado(member, "ned")
    photo = await ado(create_upload, owner=user, file=SimpleUploadedFile("p.png", png(32, 32)))
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": "v2", "text": "what is it?", "model": "gpt-35-turbo",
                       "attachments": [str(photo.pk)]})
    error = await socket.until(lambda f: f["type"] == "error")
    assert error["code"] == "no_vision_model"


async def test_the_image_tool_uses_only_an_image_model_the_user_may_use(azure_simulator, activate_config, open_socket, settings):
    settings.CHAT_IDLE_TIMEOUT = 5
    azure_simulator.reset()
    data = yaml.safe_load(restricted_yaml(azure_simulator))
    images = data["endpoints"]["azureOpenAI"]["groups"][1]
    images["models"]["gpt-image-1"]["access"] = ["artists"]  # now no image model for "basic"
    await ado(activate_config, yaml.safe_dump(data, sort_keys=False))
    _, basic = await ado(member, "bea", "basic")
    _, artist = await ado(member, "ari", "basic", "artists")
    for client, expect_tool in ((basic, False), (artist, True)):
        azure_simulator.reset()
        socket = await open_socket(client)
        await socket.send({"type": "send", "client_id": f"t-{expect_tool}", "text": "hi [sim:echo]",
                           "model": "gpt-4o-mini"})
        created = await socket.created_answer()
        await socket.done(created["id"])
        (request,) = azure_simulator.requests("gpt-4o-mini")
        assert bool(request["json"].get("tools")) is expect_tool


# ------------------------------------------------------------------------------- the admin
def test_the_admin_sees_which_models_a_user_gets_and_why(restricted):
    from apps.accounts.models import ExternalIdentity

    bea, _ = member("bea", "basic")
    ExternalIdentity.objects.create(user=bea, issuer="https://idp", subject="s", groups_overage=True)
    _, admin = make_user_and_client("root", staff=True)
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="root").update(is_superuser=True)
    page = admin.get(f"/admin/auth/user/{bea.pk}/change/").content.decode()
    assert 'data-key="gpt-4o" data-allowed="no"' in page and "needs one of premium" in page
    assert 'data-key="gpt-4o-mini" data-allowed="yes"' in page and "member of basic" in page
    assert "group overage claim" in page and "app roles" in page


def test_the_config_preview_shows_access_and_its_diff(restricted, azure_simulator):
    from apps.azure.admin import describe, diff
    from apps.azure.registry import registry_from_text

    data = yaml.safe_load(restricted_yaml(azure_simulator))
    data["endpoints"]["azureOpenAI"]["groups"][0]["models"]["gpt-4o"]["access"] = ["premium", "research"]
    new = registry_from_text(yaml.safe_dump(data, sort_keys=False))
    rows = {m["key"]: m for g in describe(new) for m in g["models"]}
    assert rows["small-window"]["access"] == "everyone" and rows["dall-e-3"]["access"] == "artists"
    assert rows["gpt-4o"]["access"] == "premium, research"
    changed = {c["key"]: c["fields"] for c in diff(restricted, new)["changed"]}
    assert changed == {"gpt-4o": "access"}
