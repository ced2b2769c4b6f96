"""A Responses-API model (useResponsesApi) through the real websocket, against the simulator's
/openai/v1/responses stream: text and reasoning summary relayed, stored, resumed and stopped
like any answer; the reasoning never goes back as prompt; usage keeps the reasoning tokens."""

import json

import pytest

from apps.chat.models import Message, UsageRecord
from tests.chat.conftest import wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "gpt-5-codex"  # the simulator serves it only through /openai/v1/responses


def responses_group(azure_simulator):
    return {
        "group": "responses", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": azure_simulator.url,
        "useResponsesApi": True,
        "models": {MODEL: {"deploymentName": MODEL}, "o4-mini": {"deploymentName": "o4-mini"}},
    }


@pytest.fixture
def responses_config(azure_simulator, activate_config, settings):
    settings.CHAT_IDLE_TIMEOUT = 1.5
    azure_simulator.reset()
    return activate_config(azure_simulator.config_yaml(
        titleConvo=False, summarize=False, extra_groups=[responses_group(azure_simulator)],
    ))


def reasoning_of(socket, message_id):
    """The reasoning summary as a client assembles it (snapshot, then deltas in seq order)."""
    text, seq = "", 0
    for frame in socket.frames:
        if frame.get("message_id") != message_id:
            continue
        if frame["type"] == "snapshot" and frame["seq"] >= seq:
            text, seq = frame.get("reasoning", ""), frame["seq"]
        elif frame["type"] == "delta" and frame["seq"] > seq:
            text, seq = text + frame.get("reasoning", ""), frame["seq"]
    return text


async def test_streams_text_and_reasoning_stores_both_with_reasoning_tokens(
    responses_config, user_a, open_socket, azure_simulator
):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "r1", "model": MODEL,
                       "text": "Explain quotas [sim:words 60] [sim:delay chunk=10]"})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    assert done["status"] == "complete" and done["finish_reason"] == "stop"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.content == socket.text_of(answer["id"]) and len(stored.content) > 100
    assert stored.reasoning == reasoning_of(socket, answer["id"])
    assert stored.reasoning.startswith("**Reading the question**") and "Explain quotas" in stored.reasoning
    assert stored.reasoning not in stored.content
    assert stored.reasoning_tokens and stored.reasoning_tokens > 0
    assert done["usage"]["reasoning_tokens"] == stored.reasoning_tokens
    assert stored.completion_tokens > stored.reasoning_tokens  # reasoning counts as output
    record = await UsageRecord.objects.aget(model_key=MODEL)
    assert record.reasoning_tokens == stored.reasoning_tokens and not record.estimated
    (entry,) = azure_simulator.requests(deployment=MODEL)
    assert entry["path"] == "/openai/v1/responses" and entry["outcome"] == "completed"
    assert "api-version" not in entry["query"]  # the GA v1 surface takes none
    body = entry["json"]
    assert body["stream"] is True and body["store"] is False
    assert body["reasoning"] == {"summary": "auto"}
    assert body["input"][-1] == {"role": "user", "content": "Explain quotas [sim:words 60] [sim:delay chunk=10]"}
    assert "messages" not in body and "max_tokens" not in body


async def test_reasoning_is_never_sent_back_as_prompt(responses_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "p1", "model": MODEL, "text": "First question"})
    first = await socket.created_answer()
    await socket.done(first["id"])
    stored = await Message.objects.aget(id=first["id"])
    assert stored.reasoning
    await socket.send({"type": "send", "client_id": "p2", "model": MODEL, "text": "And a follow-up",
                       "conversation_id": stored.conversation_id and str(stored.conversation_id),
                       "parent_id": first["id"]})
    second = await socket.until(
        lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant"
        and f["message"]["id"] != first["id"]
    )
    await socket.done(second["message"]["id"])
    log = azure_simulator.requests(deployment=MODEL)
    assert len(log) == 2
    follow_up = log[1]["json"]
    assert [item["role"] for item in follow_up["input"]] == ["user", "assistant", "user"]
    assert follow_up["input"][1]["content"] == stored.content
    assert stored.reasoning not in json.dumps(follow_up, ensure_ascii=False)
    assert "Reading the question" not in json.dumps(follow_up, ensure_ascii=False)


async def test_stop_closes_the_responses_stream_and_keeps_the_text(
    responses_config, user_a, open_socket, azure_simulator
):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "s1", "model": MODEL,
                       "text": "Long one [sim:words 2000] [sim:delay chunk=20]"})
    answer = await socket.created_answer()
    await socket.until(lambda f: f["type"] == "delta" and f["text"] and f["seq"] >= 3)
    await socket.send({"type": "stop", "message_id": answer["id"]})
    done = await socket.done(answer["id"])
    assert done["status"] == "stopped"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.content and stored.content == socket.text_of(answer["id"])
    assert stored.reasoning == reasoning_of(socket, answer["id"]) and stored.reasoning
    await wait_for_generations()
    assert [r["outcome"] for r in azure_simulator.requests(deployment=MODEL)] == ["client_disconnected"]


async def test_resume_on_a_new_socket_gives_text_and_reasoning(responses_config, user_a, open_socket):
    first = await open_socket(user_a[1])
    await first.send({"type": "send", "client_id": "m1", "model": MODEL,
                      "text": "Tell me [sim:words 400] [sim:delay chunk=8]"})
    answer = await first.created_answer()
    await first.until(lambda f: f["type"] == "delta" and f["text"] and f["seq"] >= 3)
    seen = first.text_of(answer["id"])
    last_seq = max(f["seq"] for f in first.frames if f["type"] == "delta")
    await first.close()

    second = await open_socket(user_a[1])
    await second.send({"type": "resume", "message_id": answer["id"], "seq": last_seq})
    snapshot = await second.until(lambda f: f["type"] == "snapshot")
    assert snapshot["text"].startswith(seen) and snapshot["reasoning"].startswith("**Reading")
    done = await second.done(answer["id"])
    assert done["status"] == "complete"
    stored = await Message.objects.aget(id=answer["id"])
    assert second.text_of(answer["id"]) == stored.content and len(stored.content) > len(seen)
    assert reasoning_of(second, answer["id"]) == stored.reasoning


@pytest.mark.parametrize(("marker", "status", "code"), [
    ("[sim:error_event after=2]", "error", "upstream_error"),
    ("[sim:failed after=2]", "error", "upstream_error"),
    ("[sim:filter_answer after=2]", "filtered", "content_filter_answer"),
    ("[sim:cut after=2]", "interrupted", "upstream_broken"),
    ("[sim:filter_prompt]", "filtered", "content_filter_prompt"),
])
async def test_errors_and_filters_end_like_chat_completions(
    responses_config, user_a, open_socket, marker, status, code
):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "e1", "model": "o4-mini",
                       "text": f"Hello [sim:words 80] {marker}"})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"])
    assert (done["status"], done["error"]["code"]) == (status, code)
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.status == status and stored.content == socket.text_of(answer["id"])
    if "after=2" in marker:
        assert stored.content  # the text before the fault is kept


async def test_a_short_429_is_retried_with_a_notice(responses_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "q1", "model": MODEL,
                       "text": "Busy [sim:429 retry_after=1 times=1]"})
    answer = await socket.created_answer()
    retrying = await socket.until(lambda f: f["type"] == "retrying")
    assert retrying["status"] == 429 and "Azure is busy" in retrying["message"]
    done = await socket.done(answer["id"])
    assert done["status"] == "complete"
    assert [r["status"] for r in azure_simulator.requests(deployment=MODEL)] == [429, 200]


async def test_the_image_tool_rides_on_the_responses_api_as_a_function_call(
    responses_config, user_a, open_socket, azure_simulator
):
    """A Responses model with plugins gets generate_image as a flat function tool; its
    function_call makes the picture, and the follow-up carries the call and its output (store
    is false: Azure remembers neither) with tool_choice none, and the answer continues."""
    socket = await open_socket(user_a[1])
    args = json.dumps({"prompt": "a heron at dawn"})
    await socket.send({"type": "send", "client_id": "rt1", "model": MODEL,
                       "text": f"Draw a heron [sim:tool name=generate_image args={args}] [sim:report]"})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=60)
    assert done["status"] == "complete", done
    first, follow_up = [r for r in azure_simulator.requests(MODEL) if r["path"] == "/openai/v1/responses"]
    (tool,) = first["json"]["tools"]
    assert tool["type"] == "function" and tool["name"] == "generate_image" and "function" not in tool
    assert set(tool["parameters"]["properties"]) >= {"prompt"}
    (post,) = [r for r in azure_simulator.requests("dall-e-3") if r["method"] == "POST"]
    assert post["json"]["prompt"] == "a heron at dawn"
    call, output = follow_up["json"]["input"][-2:]
    assert call["type"] == "function_call" and call["name"] == "generate_image"
    assert json.loads(call["arguments"]) == {"prompt": "a heron at dawn"}
    assert output == {"type": "function_call_output", "call_id": call["call_id"],
                      "output": output["output"]}
    assert output["output"].startswith("Image generated and shown to the user")
    assert follow_up["json"]["tool_choice"] == "none" and follow_up["json"]["store"] is False
    text = socket.text_of(answer["id"])
    report = json.loads(text.split("REPORT ", 1)[1])
    assert report["roles"][-2:] == ["assistant", "tool"], "the continuation answers the tool result"
    shown = [a for f in socket.frames if f["type"] == "attachments" and f["message_id"] == answer["id"]
             for a in f["attachments"]]
    assert len(shown) == 1 and shown[0]["kind"] == "generated"
    stored = await Message.objects.aget(id=answer["id"])
    assert stored.content == text and stored.status == Message.Status.COMPLETE
