"""Summaries of conversations that outgrow small-window (contextWindow 1200), against the simulator."""

import pytest

from apps.azure.tokens import count_messages
from apps.chat.models import BackgroundCallFailure, Conversation, Message, Summary, UsageRecord
from apps.chat.prompts import SUMMARY_HEADING, output_budget
from apps.chat.summaries import SYSTEM
from apps.simulator.language import filler
from tests.chat.conftest import ado, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY_MARK = SYSTEM.split(".")[0]  # the summary request's system prompt starts with this


@pytest.fixture
def config(azure_simulator, activate_config, settings):
    settings.CHAT_IDLE_TIMEOUT = 5

    def activate_sync(**overrides):
        chat_models = {
            "gpt-4o": {"deploymentName": "gpt-4o"},
            "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
            "small-window": {"deploymentName": "small-window", "contextWindow": 1200},
            "ghost": {"deploymentName": "no-such-deployment"},
        }
        registry = activate_config(azure_simulator.config_yaml(chat_models=chat_models, **overrides))
        azure_simulator.reset()
        return registry

    async def activate(**overrides):
        return await ado(activate_sync, **overrides)

    return activate


def seed(user, turns=6):
    """A small-window conversation of ``turns`` messages of about 120 tokens each."""
    conversation = Conversation.objects.create(owner=user, model_key="small-window", title="Long one")
    parent = None
    for n in range(turns):
        role = "user" if n % 2 == 0 else "assistant"
        parent = Message.objects.create(
            conversation=conversation, parent=parent, role=role,
            content=f"Point {n}: " + filler(120, n + 1),
        )
    conversation.current_leaf = parent
    conversation.save()
    return conversation


def summary_calls(simulator):
    return [
        r for r in simulator.requests(deployment="gpt-4o-mini")
        if r["json"]["messages"][0]["content"].startswith(SUMMARY_MARK)
    ]


async def ask(socket, conversation, text, client_id):
    await socket.send({"type": "send", "client_id": client_id, "text": text, "conversation_id": str(conversation.id)})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    await wait_for_generations()
    return done


def assert_fits(request, registry):
    model = registry.get("small-window")
    conversation = Conversation(max_output_tokens=None)
    budget = model.context_window - output_budget(model=model, conversation=conversation)
    assert count_messages(request["json"]["messages"], "small-window") <= budget == 600


async def test_outgrowing_the_window_makes_one_summary_then_extends_it(config, user_a, open_socket, azure_simulator):
    registry = await config()
    user, client = user_a
    conversation = await ado(seed, user)
    socket = await open_socket(client)

    done = await ask(socket, conversation, "What was point 2 about?", "s1")
    assert done["status"] == "complete"
    [call] = summary_calls(azure_simulator)
    first = await Summary.objects.aget()
    assert first.previous_id is None and first.model_key == "gpt-4o-mini"
    assert "Point 0:" in call["json"]["messages"][1]["content"]  # the oldest messages went in
    assert "Summary so far" not in call["json"]["messages"][1]["content"]
    chat = azure_simulator.requests(deployment="small-window")[-1]
    system = chat["json"]["messages"][0]
    assert system["role"] == "system" and system["content"] == f"{SUMMARY_HEADING}\n\n{first.text}"
    assert chat["json"]["messages"][-1]["content"] == "What was point 2 about?"
    sent = "\n".join(m["content"] for m in chat["json"]["messages"])
    assert "Point 0:" not in sent, "summarised messages are not repeated"
    assert_fits(chat, registry)
    assert f"earliest {first.covered_count} message(s) are summarised" in done["notice"]
    assert (await UsageRecord.objects.filter(purpose="summary").acount()) == 1

    # The slack left by the first summary: the next turn fits without another summary call.
    await ask(socket, conversation, "Thanks. And point 4?", "s2")
    assert len(summary_calls(azure_simulator)) == 1
    assert_fits(azure_simulator.requests(deployment="small-window")[-1], registry)

    # Keep going until it overflows again: the new checkpoint extends the first one.
    for n in range(3, 8):
        await ask(socket, conversation, f"Question {n}: " + filler(100, 50 + n), f"s{n}")
        if await Summary.objects.acount() == 2:
            break
    calls = summary_calls(azure_simulator)
    assert len(calls) == 2, "exactly one more summary call for the second overflow"
    assert f"Summary so far:\n{first.text}" in calls[1]["json"]["messages"][1]["content"]
    assert "Point 0:" not in calls[1]["json"]["messages"][1]["content"], "never redone from scratch"
    second = await Summary.objects.order_by("-created").afirst()
    assert second.previous_id == first.id and second.covered_count > first.covered_count
    chat = azure_simulator.requests(deployment="small-window")[-1]
    assert chat["json"]["messages"][0]["content"] == f"{SUMMARY_HEADING}\n\n{second.text}"
    assert_fits(chat, registry)

    # The context meter: the summary the next request would carry, and how full the window is.
    data = (await ado(client.get, f"/api/chat/conversations/{conversation.id}/context")).json()
    assert data["window"] == 1200 and data["prompt_budget"] == 600
    assert 0 < data["used"] <= data["prompt_budget"]
    assert data["summary"]["id"] == str(second.id) and data["summary"]["text"] == second.text
    assert data["summary"]["covered_count"] == second.covered_count


async def test_with_summarize_off_old_messages_are_dropped_not_summarised(config, user_a, open_socket, azure_simulator):
    registry = await config(summarize=False)
    user, client = user_a
    conversation = await ado(seed, user)
    socket = await open_socket(client)
    done = await ask(socket, conversation, "What was point 2 about?", "d1")
    assert done["status"] == "complete"
    assert azure_simulator.requests(deployment="gpt-4o-mini") == []
    assert await Summary.objects.acount() == 0
    assert "older message(s) were left out" in done["notice"]
    chat = azure_simulator.requests(deployment="small-window")[-1]
    assert all(m["role"] != "system" for m in chat["json"]["messages"])
    assert_fits(chat, registry)
    data = (await ado(client.get, f"/api/chat/conversations/{conversation.id}/context")).json()
    assert data["summary"] is None and data["dropped"] > 0


async def test_a_failing_summary_model_falls_back_to_dropping(config, user_a, open_socket, azure_simulator):
    registry = await config(summaryModel="ghost")
    user, client = user_a
    conversation = await ado(seed, user)
    socket = await open_socket(client)
    done = await ask(socket, conversation, "What was point 2 about?", "f1")
    assert done["status"] == "complete", "a failing summary never fails the answer"
    assert done["notice"].startswith("The summary of earlier messages could not be made")
    assert await Summary.objects.acount() == 0
    failure = await BackgroundCallFailure.objects.aget()
    assert (failure.purpose, failure.model_key, failure.error_code) == ("summary", "ghost", "deployment_not_found")
    assert_fits(azure_simulator.requests(deployment="small-window")[-1], registry)


async def test_context_endpoint_is_owner_only(config, user_a, user_b):
    await config()
    conversation = await ado(seed, user_a[0], 2)
    response = await ado(user_b[1].get, f"/api/chat/conversations/{conversation.id}/context")
    assert response.status_code == 404
    data = (await ado(user_a[1].get, f"/api/chat/conversations/{conversation.id}/context")).json()
    assert data["summary"] is None and data["dropped"] == 0 and data["messages"] == 2
    expected = count_messages(
        [{"role": m.role, "content": m.content} async for m in Message.objects.filter(conversation=conversation).order_by("created")],
        "small-window",
    )
    assert data["used"] == expected


async def test_a_responses_only_summary_model_summarises_through_the_responses_api(
    config, user_a, open_socket, azure_simulator
):
    group = {"group": "responses", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": azure_simulator.url,
             "useResponsesApi": True, "models": {"gpt-5-codex": {"deploymentName": "gpt-5-codex"}}}
    registry = await config(summaryModel="gpt-5-codex", extra_groups=[group])
    user, client = user_a
    conversation = await ado(seed, user)
    socket = await open_socket(client)
    done = await ask(socket, conversation, "What was point 2 about?", "r1")
    assert done["status"] == "complete"
    [call] = azure_simulator.requests(deployment="gpt-5-codex")
    assert call["path"] == "/openai/v1/responses" and call["status"] == 200
    assert call["json"]["instructions"].startswith(SUMMARY_MARK) and "reasoning" not in call["json"]
    assert "Point 0:" in call["json"]["input"][0]["content"]
    summary = await Summary.objects.aget()
    assert summary.model_key == "gpt-5-codex" and summary.text
    chat = azure_simulator.requests(deployment="small-window")[-1]
    assert chat["json"]["messages"][0]["content"] == f"{SUMMARY_HEADING}\n\n{summary.text}"
    assert_fits(chat, registry)
