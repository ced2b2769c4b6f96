"""The simulator's Responses API (POST /openai/v1/responses) against the documented event
order, read by the real openai SDK (its typed events) and as raw bytes."""

import json
from itertools import groupby

import httpx2
import pytest

from tests.simulator.helpers import openai_client

# The documented order for a reasoning model asked for a summary (one summary part, one
# message with one output_text part); repeated deltas collapse to one entry.
REASONING_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",  # the reasoning item
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
    "response.output_item.added",  # the message item
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
TEXT_ORDER = ["response.created", "response.in_progress", *REASONING_ORDER[8:]]


def collapsed(types):
    return [kind for kind, _ in groupby(types)]


async def stream_events(sim, **body):
    client = openai_client(sim, "/openai/v1")
    stream = await client.responses.create(stream=True, **body)
    return [event async for event in stream]


async def test_a_reasoning_model_streams_the_documented_order(azure_simulator):
    events = await stream_events(
        azure_simulator, model="o4-mini", input="Why quotas? [sim:words 30]",
        instructions="Be brief.", reasoning={"summary": "auto"},
    )
    assert collapsed([e.type for e in events]) == REASONING_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = {e.type: e for e in events if e.type.endswith(".done")}
    assert done["response.reasoning_summary_text.done"].text == summary
    assert done["response.output_text.done"].text == text
    final = events[-1].response
    assert final.status == "completed" and final.output_text == text
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == summary
    usage = final.usage
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert usage.output_tokens > usage.output_tokens_details.reasoning_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # Item ids tie the events together.
    reasoning_id, message_id = (item.id for item in final.output)
    assert {e.item_id for e in events if "reasoning_summary" in e.type} == {reasoning_id}
    assert {e.item_id for e in events if e.type.startswith("response.output_text")} == {message_id}


async def test_without_a_summary_or_reasoning_the_order_shrinks(azure_simulator):
    plain = await stream_events(azure_simulator, model="gpt-4o", input="Hello [sim:words 10]")
    assert collapsed([e.type for e in plain]) == TEXT_ORDER
    assert plain[-1].response.usage.output_tokens_details.reasoning_tokens == 0
    quiet = await stream_events(azure_simulator, model="o4-mini", input="Hello [sim:words 10]")
    assert collapsed([e.type for e in quiet])[:4] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.output_item.done",
    ]
    assert quiet[-1].response.usage.output_tokens_details.reasoning_tokens > 0


async def test_max_output_tokens_ends_incomplete(azure_simulator):
    events = await stream_events(
        azure_simulator, model="gpt-4o", input="Long [sim:words 200]", max_output_tokens=16,
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


async def test_non_streamed_response(azure_simulator):
    client = openai_client(azure_simulator, "/openai/v1")
    response = await client.responses.create(
        model="gpt-5-codex", input=[{"role": "user", "content": "Hi [sim:echo]"}],
        reasoning={"summary": "auto"},
    )
    assert response.status == "completed" and response.output_text == "Hi"
    assert response.output[0].type == "reasoning" and response.output[0].summary


def test_raw_events_name_their_type_and_end_without_done(azure_simulator):
    with httpx2.Client() as client:
        response = client.post(
            azure_simulator.url + "/openai/v1/responses", headers={"api-key": azure_simulator.api_key},
            json={"model": "o4-mini", "input": "Hi [sim:words 5]", "stream": True,
                  "reasoning": {"summary": "auto"}},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b]
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line == "event: " + json.loads(data_line.removeprefix("data: "))["type"]
    assert "[DONE]" not in response.text and blocks[-1].startswith("event: response.completed")


@pytest.mark.parametrize(("url", "body", "status", "code"), [
    ("/openai/v1/responses?api-version=2024-10-21", {"model": "gpt-4o", "input": "x"}, 400, "BadRequest"),
    ("/openai/v1/responses", {"model": "nope", "input": "x"}, 404, "DeploymentNotFound"),
    ("/openai/v1/responses", {"model": "gpt-4o"}, 400, None),
    ("/openai/deployments/gpt-5-codex/chat/completions?api-version=2024-10-21",
     {"messages": [{"role": "user", "content": "x"}]}, 400, "OperationNotSupported"),
    # chat-completions tools nested under "function" are not the Responses form
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "x", "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, 400, None),
    # chat parameters moved elsewhere in the Responses API are refused by name
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "json please",
                              "response_format": {"type": "json_object"}}, 400, None),
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "x", "max_tokens": 5}, 400, None),
    # json_object needs the word JSON somewhere in the input, as on chat/completions
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "x", "text": {"format": {"type": "json_object"}}},
     400, None),
    # with store false nothing is remembered: an output needs its call in the same input
    ("/openai/v1/responses", {"model": "gpt-4o", "input": [
        {"role": "user", "content": "x"},
        {"type": "function_call_output", "call_id": "call_1", "output": "done"}]}, 400, None),
])
def test_refusals(azure_simulator, url, body, status, code):
    with httpx2.Client() as client:
        response = client.post(azure_simulator.url + url, json=body,
                               headers={"api-key": azure_simulator.api_key})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


FUNCTION_ORDER = ["response.created", "response.in_progress", "response.output_item.added",
                  "response.function_call_arguments.delta", "response.function_call_arguments.done",
                  "response.output_item.done", "response.completed"]
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


async def test_a_function_call_streams_as_an_output_item(azure_simulator):
    """The SDK's typed events for a forced function call: one function_call item whose
    argument deltas add up to the final arguments, and a completed response holding it."""
    events = await stream_events(azure_simulator, model="gpt-4o", input="Weather in Oslo?",
                                 tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
    assert collapsed(e.type for e in events) == FUNCTION_ORDER
    added = events[2].item
    assert added.type == "function_call" and added.name == "get_weather" and added.call_id
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == json.loads(events[-3].arguments) == json.loads(events[-2].item.arguments)
    (item,) = events[-1].response.output
    assert item.type == "function_call" and item.call_id == added.call_id
    assert events[-1].response.tools[0].name == "get_weather"


async def test_a_follow_up_with_the_call_and_its_output_answers_in_text(azure_simulator):
    events = await stream_events(azure_simulator, model="gpt-4o", tool_choice="none", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Oslo? [sim:report]"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 4 degrees"},
    ])
    assert collapsed(e.type for e in events) == TEXT_ORDER
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    report = json.loads(text.split("REPORT ", 1)[1])
    assert report["roles"] == ["user", "assistant", "tool"]
