"""Chat completions through the real openai SDK against the simulator, over loopback HTTP."""

import json
import uuid

import pytest
from openai import AuthenticationError, BadRequestError, NotFoundError

from apps.azure.tokens import count_messages
from tests.simulator.helpers import (
    OLD_VERSION,
    azure_client,
    collect,
    content_of,
    openai_client,
    user,
)


async def test_stream_order_with_usage(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=user("Tell me about streams"), stream=True,
            stream_options={"include_usage": True},
        )
        chunks = await collect(stream)
    first, role, *middle, finish, usage = chunks
    assert first.choices == [] and first.id == "" and first.model == ""
    assert first.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert role.choices[0].delta.role == "assistant" and role.choices[0].delta.content == ""
    assert role.model == "gpt-4o-mini-2024-07-18"
    assert len(middle) >= 2 and all(c.choices[0].delta.content for c in middle)
    assert all(c.choices[0].model_extra["content_filter_results"]["hate"]["severity"] == "safe"
               for c in middle)
    assert len({len(c.choices[0].delta.content.split()) for c in middle}) > 1  # varying batches
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert usage.choices == [] and usage.usage.completion_tokens > 0
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + usage.usage.completion_tokens
    assert all(c.usage is None for c in chunks[1:-1])


async def test_no_usage_chunk_unless_asked_and_replies_are_deterministic(azure_simulator):
    async with azure_client(azure_simulator) as client:
        texts = []
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=user("Same question twice"), stream=True)
            chunks = await collect(stream)
            assert chunks[-1].choices[0].finish_reason == "stop"
            assert all(c.usage is None for c in chunks)
            assert "usage" not in chunks[1].model_extra and chunks[1].model_fields_set.isdisjoint({"usage"})
            texts.append(content_of(chunks))
        other = await client.chat.completions.create(model="gpt-4o", messages=user("Another one"))
    assert texts[0] == texts[1] and len(texts[0].split()) > 20
    assert other.choices[0].message.content != texts[0]


async def test_non_streaming_shape(azure_simulator):
    async with azure_client(azure_simulator) as client:
        response = await client.chat.completions.create(model="gpt-4o", messages=user("Hello"))
        stream = await client.chat.completions.create(model="gpt-4o", messages=user("Hello"), stream=True)
        streamed = content_of(await collect(stream))
    assert response.model == "gpt-4o-2024-08-06" and response.object == "chat.completion"
    assert response.model_extra["prompt_filter_results"][0]["content_filter_results"]["jailbreak"] == {
        "filtered": False, "detected": False}
    assert response.choices[0].model_extra["content_filter_results"]["violence"]["filtered"] is False
    assert response.choices[0].message.content == streamed
    assert response.usage.prompt_tokens == count_messages(user("Hello"), "gpt-4o-2024-08-06")


async def test_stream_options_rejected_before_2024_09_01_preview(azure_simulator):
    async with azure_client(azure_simulator, version=OLD_VERSION) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.chat.completions.create(
                model="gpt-4o", messages=user("hi"), stream=True, stream_options={"include_usage": True})
        stream = await client.chat.completions.create(model="gpt-4o", messages=user("hi"), stream=True)
        assert content_of(await collect(stream))
    assert "Unrecognized request argument supplied: stream_options" in caught.value.message


async def test_unknown_deployment_version_and_bad_key(azure_simulator):
    async with azure_client(azure_simulator) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.chat.completions.create(model="no-such", messages=user("hi"))
    async with azure_client(azure_simulator, version="2031-01-01") as client:
        with pytest.raises(NotFoundError) as version:
            await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    async with azure_client(azure_simulator, api_key="wrong") as client:
        with pytest.raises(AuthenticationError) as bad_key:
            await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert missing.value.code == "DeploymentNotFound"
    assert version.value.body == {"code": "404", "message": "Resource not found"}
    assert bad_key.value.status_code == 401 and bad_key.value.body["message"].startswith(
        "Access denied due to invalid subscription key or wrong API endpoint.")


async def test_context_length_exceeded(azure_simulator):
    long_text = "word " * 1500
    async with azure_client(azure_simulator) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.chat.completions.create(model="small-window", messages=user(long_text))
        fits = await client.chat.completions.create(model="gpt-4o-mini", messages=user(long_text))
    assert caught.value.code == "context_length_exceeded" and "1200 tokens" in caught.value.message
    assert fits.choices[0].finish_reason == "stop"


async def test_echo_markdown_words(azure_simulator):
    tricky = "<script>alert(1)</script>\n\n**bold** `code` & [link](javascript:x)"
    async with azure_client(azure_simulator) as client:
        echo = await client.chat.completions.create(
            model="gpt-4o", messages=user(f"[sim:echo] {tricky}"), stream=True)
        markdown = await client.chat.completions.create(model="gpt-4o", messages=user("[sim:markdown]"))
        words = await client.chat.completions.create(model="gpt-4o", messages=user("[sim:words 300]"))
        short = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:words 300]"), max_tokens=10)
        echoed = content_of(await collect(echo))
    assert echoed == tricky
    text = markdown.choices[0].message.content
    assert text.startswith("## ") and "\n- " in text and "```python\n" in text
    assert 250 <= words.usage.completion_tokens <= 380
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens <= 12


async def test_report_states_what_the_request_held(azure_simulator):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    messages = [
        {"role": "system", "content": "You are a careful assistant who answers in short sentences always."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "look [sim:report]"}, image, image]},
    ]
    tools = [{"type": "function", "function": {"name": "generate_image", "parameters": {"type": "object"}}}]
    async with azure_client(azure_simulator) as client:
        response = await client.chat.completions.create(
            model="gpt-4o", messages=messages, temperature=0.3, max_tokens=500, tools=tools)
    line = response.choices[0].message.content
    assert line.startswith("REPORT ")
    report = json.loads(line[len("REPORT "):])
    assert report["messages"] == 4 and report["roles"] == ["system", "user", "assistant", "user"]
    assert report["system"] == "You are a careful assistant who answers in"
    assert report["images"] == 2 and report["details"] == ["low", "low"]
    assert report["params"]["temperature"] == 0.3 and report["params"]["max_tokens"] == 500
    assert "messages" not in report["params"] and report["params"]["model"] == "gpt-4o"
    assert report["tools"] == ["generate_image"] and report["deployment"] == "gpt-4o"
    assert report["prompt_tokens"] == count_messages(messages, "gpt-4o-2024-08-06")


async def test_tool_calls_stream_as_deltas(azure_simulator):
    tools = [{"type": "function", "function": {
        "name": "generate_image", "parameters": {"type": "object", "properties": {"prompt": {"type": "string"}}}}}]
    marker = '[sim:tool name=generate_image args={"prompt": "a red fox", "size": "1024x1024"}]'
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user(f"draw {marker}"), tools=tools, stream=True)
        chunks = await collect(stream)
        plain = await client.chat.completions.create(model="gpt-4o", messages=user(f"draw {marker}"))
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].id.startswith("call_") and calls[0].function.name == "generate_image"
    assert all(call.id is None and call.function.name is None for call in calls[1:]) and len(calls) > 2
    arguments = "".join(call.function.arguments for call in calls)
    assert json.loads(arguments) == {"prompt": "a red fox", "size": "1024x1024"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None


async def test_forced_tool_choice_gives_a_title(azure_simulator):
    tools = [{"type": "function", "function": {
        "name": "submit_title",
        "parameters": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}}]
    messages = user("How do penguins keep warm in winter storms?")
    async with azure_client(azure_simulator) as client:
        response = await client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=tools,
            tool_choice={"type": "function", "function": {"name": "submit_title"}})
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls" and call.function.name == "submit_title"
    assert json.loads(call.function.arguments) == {"title": "How Do Penguins Keep Warm"}


async def test_completions_route_for_force_prompt(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.completions.create(
            model="gpt-35-turbo", prompt="User: [sim:echo] hello prompt\nAssistant:", stream=True)
        chunks = await collect(stream)
        whole = await client.completions.create(model="gpt-35-turbo-instruct", prompt="Say something")
    assert chunks[0].choices == [] and chunks[0].id == ""
    assert all(c.object == "text_completion" for c in chunks[1:])
    assert "".join(c.choices[0].text for c in chunks[1:]) == "User: hello prompt\nAssistant:"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert whole.model == "gpt-35-turbo-instruct-0914" and whole.choices[0].text
    assert whole.usage.prompt_tokens > 0


async def test_v1_surface_and_serverless(azure_simulator):
    async with openai_client(azure_simulator, "/openai/v1") as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=user("v1 please"), stream=True,
            stream_options={"include_usage": True})
        chunks = await collect(stream)
        with pytest.raises(NotFoundError):
            await client.chat.completions.create(model="missing", messages=user("x"))
    assert chunks[0].choices == [] and chunks[-1].usage.completion_tokens > 0
    v1 = azure_simulator.requests()[-2]
    assert v1["path"] == "/openai/v1/chat/completions" and "api-version" not in v1["query"]
    assert v1["deployment"] == "gpt-4o-mini" and v1["headers"]["authorization"] == "Bearer ***"

    async with openai_client(azure_simulator, "/v1") as client:
        stream = await client.chat.completions.create(
            model="mistral-large", messages=user("[sim:echo] serverless"), stream=True)
        chunks = await collect(stream)
    async with openai_client(azure_simulator, "/v1", api_key="nope") as client:
        with pytest.raises(AuthenticationError):
            await client.chat.completions.create(model="mistral-large", messages=user("x"))
    assert chunks[0].choices[0].delta.role == "assistant"  # no Azure annotation chunk
    assert content_of(chunks) == "serverless" and chunks[0].model == "Mistral-large-2411"


async def test_request_log_masks_keys(azure_simulator):
    nonce = uuid.uuid4().hex
    async with azure_client(azure_simulator) as client:
        await client.chat.completions.create(model="gpt-4o", messages=user(f"log me {nonce}"))
    entry = [e for e in azure_simulator.requests("gpt-4o") if nonce in json.dumps(e["json"])][0]
    assert entry["headers"]["api-key"] == "***" and azure_simulator.api_key not in json.dumps(entry)
    assert entry["outcome"] == "completed" and entry["status"] == 200
    assert entry["query"] == {"api-version": "2024-10-21"} and entry["method"] == "POST"


async def test_sdk_reads_async_filter_annotations(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:async_filter] [sim:echo] one two three four five six"),
            stream=True)
        chunks = await collect(stream)
    annotations = [c for c in chunks if c.choices and c.choices[0].delta is None]
    assert annotations and "content_filter_offsets" in annotations[-1].choices[0].model_extra
    assert content_of(chunks) == "one two three four five six"
