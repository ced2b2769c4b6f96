"""Titles from the title model, through the real socket, SDK and simulator."""

import asyncio

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.chat import titles
from apps.chat.models import BackgroundCallFailure, Conversation, UsageRecord
from apps.chat.services import rename_conversation
from apps.chat.titles import clean_title, fallback_title
from apps.simulator.language import short_title
from tests.chat.conftest import ado, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)

GHOST = {"deploymentName": "no-such-deployment"}


@pytest.fixture
def config(azure_simulator, activate_config, settings):
    """``config(**overrides)``: the simulator's config with those endpoint flags, log cleared."""
    settings.CHAT_IDLE_TIMEOUT = 5

    def activate_sync(**overrides):
        if overrides.pop("ghost", False):
            overrides["chat_models"] = {
                "gpt-4o": {"deploymentName": "gpt-4o"},
                "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
                "ghost": GHOST,
            }
        registry = activate_config(azure_simulator.config_yaml(**overrides))
        azure_simulator.reset()
        return registry

    async def activate(**overrides):
        return await ado(activate_sync, **overrides)

    return activate


async def wait_for_titles():
    tasks = list(titles._tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=30)


async def first_exchange(socket, text, model="gpt-4o"):
    await socket.send({"type": "send", "client_id": "t1", "text": text, "model": model})
    answer = await socket.created_answer()
    await socket.done(answer["id"])
    await wait_for_titles()
    await wait_for_generations()
    return answer


async def title_frame(socket):
    """The title frame: the task is done, but its frame may still be on its way to the socket."""
    found = title_frames(socket)
    return found[0] if found else await socket.until(lambda f: f["type"] == "title", timeout=10)


def title_frames(socket):
    return [f for f in socket.frames if f["type"] == "title"]


async def test_completion_method_asks_the_title_model_for_plain_text(config, user_a, open_socket, azure_simulator):
    await config(titleMethod="completion")
    socket = await open_socket(user_a[1])
    answer = await first_exchange(socket, "Plan a weekend trip to Lisbon with two friends")

    [request] = azure_simulator.requests(deployment="gpt-4o-mini")
    body = request["json"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "Plan a weekend trip to Lisbon with two friends"
    assert "same language" in body["messages"][0]["content"]
    assert "tools" not in body and "tool_choice" not in body and not body.get("stream")
    assert body["max_tokens"] == titles.TITLE_MAX_TOKENS

    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    frame = await title_frame(socket)
    assert len(title_frames(socket)) == 1
    assert frame == {"type": "title", "conversation_id": str(conversation.id), "title": conversation.title}
    assert conversation.title_source == Conversation.TitleSource.MODEL
    # The simulator answers prose; what is left after cleaning is its first sentence, no markdown.
    assert conversation.title.startswith("Here is a short note on ")
    assert "*" not in conversation.title and not conversation.title.endswith(".")
    assert len(conversation.title) <= titles.TITLE_MAX_CHARS
    title_usage = await UsageRecord.objects.aget(purpose="title")
    assert (title_usage.model_key, title_usage.deployment) == ("gpt-4o-mini", "gpt-4o-mini")
    assert title_usage.prompt_tokens > 0 and title_usage.completion_tokens > 0
    assert title_usage.user_id == user_a[0].pk and title_usage.conversation_id == conversation.id
    chat_usage = await UsageRecord.objects.aget(purpose="chat")
    assert chat_usage.model_key == "gpt-4o" and chat_usage.completion_tokens > 0


async def test_functions_method_forces_set_title_and_uses_its_argument(config, user_a, open_socket, azure_simulator):
    await config(titleMethod="functions")
    socket = await open_socket(user_a[1])
    text = "Compare sourdough and rye starters for a beginner baker"
    answer = await first_exchange(socket, text)

    [request] = azure_simulator.requests(deployment="gpt-4o-mini")
    body = request["json"]
    assert [t["function"]["name"] for t in body["tools"]] == ["set_title"]
    assert body["tools"][0]["function"]["parameters"]["properties"]["title"]["type"] == "string"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "set_title"}}
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    assert conversation.title == short_title(text) == "Compare Sourdough And Rye Starters"
    assert conversation.title_source == Conversation.TitleSource.MODEL
    assert (await title_frame(socket))["title"] == conversation.title
    # The chat answer itself went to the chat model, without the title tool.
    [chat] = azure_simulator.requests(deployment="gpt-4o")
    # The title's forced function never reaches the answer (plugins offer only generate_image).
    assert [t["function"]["name"] for t in chat["json"].get("tools", [])] in ([], ["generate_image"])
    assert "tool_choice" not in chat["json"]


async def test_failing_title_model_gives_fallback_and_admin_record(config, user_a, open_socket, azure_simulator):
    await config(titleModel="ghost", ghost=True)
    socket = await open_socket(user_a[1])
    text = "What should we name the new internal wiki for the platform team"
    answer = await first_exchange(socket, text)

    done = [f for f in socket.frames if f["type"] == "done"][0]
    assert done["status"] == "complete", "a failing title never fails the answer"
    assert [r["outcome"] for r in azure_simulator.requests(deployment="no-such-deployment")]
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    assert conversation.title == fallback_title(text) == "What should we name the new internal wiki…"
    assert conversation.title_source == Conversation.TitleSource.FALLBACK
    assert (await title_frame(socket))["title"] == conversation.title
    failure = await BackgroundCallFailure.objects.aget()
    assert (failure.purpose, failure.model_key, failure.error_code) == ("title", "ghost", "deployment_not_found")
    assert "no-such-deployment" in failure.admin_detail and failure.conversation_id == conversation.id
    assert azure_simulator.api_key not in failure.admin_detail

    def admin_page():
        staff = Client()
        staff.force_login(get_user_model().objects.create_superuser("root", password="Zebra-crossing-42!"))
        return staff.get("/admin/chat/backgroundcallfailure/").content.decode()

    page = await ado(admin_page)
    assert "deployment_not_found" in page and "ghost" in page


async def test_a_rename_during_the_title_call_is_never_overwritten(config, user_a, open_socket, azure_simulator):
    await config(titleMethod="functions")
    user, client = user_a
    socket = await open_socket(client)
    # The delay marker slows the answer and the title call alike: the rename lands first.
    await socket.send({"type": "send", "client_id": "r1", "text": "Budget for Q3 [sim:delay ttft=1500]", "model": "gpt-4o"})
    answer = await socket.created_answer()
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    await ado(rename_conversation, conversation=conversation, title="My own name")
    await socket.done(answer["id"])
    await wait_for_titles()

    assert azure_simulator.requests(deployment="gpt-4o-mini"), "the title call was made"
    conversation = await Conversation.objects.aget(id=conversation.id)
    assert (conversation.title, conversation.title_source) == ("My own name", "user")
    assert title_frames(socket) == []
    # And directly: a late write finds the user's title and leaves it.
    assert await titles.write_title(conversation_id=conversation.id, user_id=user.pk, title="Late", source="model") is None


async def test_title_convo_off_makes_no_call(config, user_a, open_socket, azure_simulator):
    await config(titleConvo=False)
    socket = await open_socket(user_a[1])
    answer = await first_exchange(socket, "Hello there, how are you")
    assert azure_simulator.requests(deployment="gpt-4o-mini") == []
    assert title_frames(socket) == []
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    assert conversation.title_source == Conversation.TitleSource.NONE
    assert conversation.title == "Hello there, how are you"  # the provisional title stays


async def test_only_the_first_message_is_titled_and_every_tab_hears_it(config, user_a, open_socket, azure_simulator):
    await config(titleMethod="functions")
    first_tab = await open_socket(user_a[1])
    second_tab = await open_socket(user_a[1])
    answer = await first_exchange(first_tab, "Explain vector clocks to a new engineer")
    frame = await second_tab.until(lambda f: f["type"] == "title")
    assert frame["title"] == "Explain Vector Clocks To A"
    await first_tab.send({"type": "send", "client_id": "t2", "text": "And Lamport clocks?",
                          "conversation_id": answer["conversation_id"]})
    second = await first_tab.created_answer()
    await first_tab.done(second["id"])
    await wait_for_titles()
    assert len(azure_simulator.requests(deployment="gpt-4o-mini")) == 1


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ('"Trip to Paris."', "Trip to Paris"),
        ("<think>The user wants a title.</think>\nTitle: «Reise nach Berlin»!", "Reise nach Berlin"),
        ("<think>never closed", ""),
        ("## **Go vs. Rust**", "Go vs. Rust"),
        ("“東京の天気”。", "東京の天気"),
        ("Here is a short note on **tokens**. Every team should keep", "Here is a short note on tokens"),
        ("word " * 40, ("word " * 16).strip()),
        ("line one\nline two", "line one"),
        ("bell\x07 and\u200b zero-width", "bell and zero-width"),
    ],
)
def test_clean_title(raw, title):
    assert clean_title(raw) == title
    assert len(clean_title(raw)) <= titles.TITLE_MAX_CHARS


def test_fallback_title():
    assert fallback_title("  Short   question ") == "Short question"
    assert fallback_title("") == "New conversation"
    assert len(fallback_title("x" * 500)) <= titles.TITLE_MAX_CHARS + 1


@pytest.mark.parametrize("method", ["completion", "functions"])
async def test_add_params_for_answers_never_reach_the_title_call(
    method, azure_simulator, activate_config, settings, user_a, open_socket
):
    """A group whose addParams set a 2,048-token cap and JSON mode for answers: the answer gets
    both, the title call keeps its own cap and no response format (Azure, like the simulator,
    refuses ``json_object`` when no message mentions JSON, and a title prompt does not)."""
    import yaml

    settings.CHAT_IDLE_TIMEOUT = 5
    config = yaml.safe_load(azure_simulator.config_yaml(titleMethod=method))
    group = config["endpoints"]["azureOpenAI"]["groups"][0]
    group["addParams"] = {"max_tokens": 2048, "response_format": {"type": "json_object"}, "seed": 7}
    await ado(activate_config, yaml.safe_dump(config))
    azure_simulator.reset()
    socket = await open_socket(user_a[1])
    answer = await first_exchange(socket, "Plan a weekend trip to Lisbon for two friends, as JSON")

    [title_request] = azure_simulator.requests(deployment="gpt-4o-mini")
    body = title_request["json"]
    cap = titles.FUNCTION_MAX_TOKENS if method == "functions" else titles.TITLE_MAX_TOKENS
    assert body["max_tokens"] == cap
    assert "response_format" not in body
    assert body["seed"] == 7  # the rest of addParams still applies
    assert title_request["status"] == 200
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    assert conversation.title_source == Conversation.TitleSource.MODEL
    [chat] = azure_simulator.requests(deployment="gpt-4o")
    assert chat["json"]["max_tokens"] == 2048 and chat["json"]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("method", ["completion", "functions"])
async def test_a_responses_only_model_writes_titles_through_the_responses_api(
    method, azure_simulator, activate_config, settings, user_a, open_socket
):
    """gpt-5-codex is served only at /openai/v1/responses: as the title model it gets the title
    call there, with the title's own cap (its group's addParams cap is for answers), no
    reasoning summary, and set_title as a flat function tool when the method is functions."""
    settings.CHAT_IDLE_TIMEOUT = 5
    group = {"group": "responses", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": azure_simulator.url,
             "useResponsesApi": True, "addParams": {"max_output_tokens": 2048},
             "models": {"gpt-5-codex": {"deploymentName": "gpt-5-codex"}}}
    await ado(activate_config, azure_simulator.config_yaml(
        titleMethod=method, titleModel="gpt-5-codex", extra_groups=[group]))
    azure_simulator.reset()
    socket = await open_socket(user_a[1])
    text = "Compare sourdough and rye starters for a beginner baker"
    answer = await first_exchange(socket, text)

    [request] = azure_simulator.requests(deployment="gpt-5-codex")
    assert request["path"] == "/openai/v1/responses" and request["status"] == 200
    body = request["json"]
    assert body["max_output_tokens"] == titles.REASONING_MAX_TOKENS and "reasoning" not in body
    assert body["store"] is False and "same language" in body["instructions"]
    conversation = await Conversation.objects.aget(id=answer["conversation_id"])
    assert conversation.title_source == Conversation.TitleSource.MODEL
    if method == "functions":
        assert body["tools"][0]["name"] == "set_title"
        assert body["tool_choice"] == {"type": "function", "name": "set_title"}
        assert conversation.title == short_title(text)
    else:
        assert "tools" not in body and conversation.title.startswith("Here is a short note on ")
    usage = await UsageRecord.objects.aget(purpose="title")
    assert usage.deployment == "gpt-5-codex" and usage.completion_tokens > 0
