"""Faults on demand, as the real openai SDK sees them (exception types, retries, disconnects)."""

import asyncio
import json
import uuid

import httpx2
import pytest
from openai import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)

from tests.simulator.helpers import azure_client, collect, content_of, user, wait_for_entry


def tagged(text):
    """A prompt with a unique tag, to find this test's requests in the shared log."""
    tag = uuid.uuid4().hex
    return f"{text} {tag}", tag


def with_tag(sim, tag):
    return [e for e in sim.requests() if tag in json.dumps(e["json"])]


async def test_429_retry_after_is_honoured(azure_simulator):
    azure_simulator.reset()
    prompt, tag = tagged("[sim:429 retry_after=1 times=1]")
    async with azure_client(azure_simulator, max_retries=2) as client:
        response = await client.chat.completions.create(model="gpt-4o", messages=user(prompt))
    assert response.choices[0].finish_reason == "stop"
    first, second = with_tag(azure_simulator, tag)
    assert (first["status"], second["status"]) == (429, 200)
    assert first["outcome"] == "error" and second["outcome"] == "completed"
    # retry-after-ms said 1000 ms; the SDK's own backoff would have waited at most 0.5 s
    assert second["time"] - first["time"] >= 0.9


async def test_429_without_retries_raises_with_headers(azure_simulator):
    prompt, _ = tagged("[sim:429 retry_after=7]")
    async with azure_client(azure_simulator) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=user(prompt))
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7" and headers["retry-after-ms"] == "7000"
    assert caught.value.code == "429" and "retry after 7 seconds" in caught.value.message


async def test_configured_rate_limit(azure_simulator):
    azure_simulator.reset()
    async with azure_client(azure_simulator) as client:
        for _ in range(2):
            await client.chat.completions.create(model="limited", messages=user("ok"))
        with pytest.raises(RateLimitError) as caught:
            await client.chat.completions.create(model="limited", messages=user("ok"))
    assert 0 < int(caught.value.response.headers["retry-after"]) <= 60
    azure_simulator.reset()  # clears the window for whoever comes next


async def test_500_and_503(azure_simulator):
    azure_simulator.reset()
    prompt, tag = tagged("[sim:503 times=1]")
    async with azure_client(azure_simulator, max_retries=1) as client:
        response = await client.chat.completions.create(model="gpt-4o", messages=user(prompt))
    assert [e["status"] for e in with_tag(azure_simulator, tag)] == [503, 200]
    assert response.choices[0].message.content
    async with azure_client(azure_simulator) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=user("[sim:500]"))
    assert caught.value.status_code == 500 and caught.value.body["type"] == "server_error"


async def test_times_counter_reset(azure_simulator):
    azure_simulator.reset()
    async with azure_client(azure_simulator) as client:
        with pytest.raises(InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=user("[sim:500 times=1]"))
        await client.chat.completions.create(model="gpt-4o", messages=user("[sim:500 times=1]"))
        azure_simulator.reset()
        assert azure_simulator.requests() == []
        with pytest.raises(InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=user("[sim:500 times=1]"))


async def test_prompt_filter(azure_simulator):
    async with azure_client(azure_simulator) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.chat.completions.create(
                model="gpt-4o", messages=user("[sim:filter_prompt category=hate severity=medium]"),
                stream=True)
    error = caught.value
    assert error.code == "content_filter" and error.param == "prompt"
    result = error.body["innererror"]["content_filter_result"]
    assert error.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert result["hate"] == {"filtered": True, "severity": "medium"}
    assert result["violence"] == {"filtered": False, "severity": "safe"}


async def test_answer_filter(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:filter_answer after=2] [sim:words 80]"), stream=True)
        chunks = await collect(stream)
        whole = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:filter_answer after=2] [sim:words 80]"))
    contents = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == 2
    finish = chunks[-1].choices[0]
    assert finish.finish_reason == "content_filter"
    assert finish.model_extra["content_filter_results"]["violence"]["filtered"] is True
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.choices[0].message.content == content_of(chunks)


async def test_answer_filter_names_the_category_asked_for(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:filter_answer after=1 category=hate severity=high]"),
            stream=True)
        finish = (await collect(stream))[-1].choices[0]
    assert finish.model_extra["content_filter_results"]["hate"] == {"filtered": True, "severity": "high"}


async def test_drop_raises_api_connection_error(azure_simulator):
    prompt, tag = tagged("[sim:drop after=2] [sim:words 80]")
    received = []
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True)
        with pytest.raises(APIConnectionError):
            async for chunk in stream:
                received.append(chunk)
    assert len([c for c in received if c.choices and c.choices[0].delta.content]) == 2
    assert with_tag(azure_simulator, tag)[0]["outcome"] == "error"


async def test_error_event_raises_api_error(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:error_event after=1]"), stream=True)
        with pytest.raises(APIError) as caught:
            await collect(stream)
    assert not isinstance(caught.value, APIConnectionError)
    assert caught.value.body["type"] == "server_error"


async def test_malformed_sse(azure_simulator):
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("[sim:malformed after=1]"), stream=True)
        with pytest.raises(json.JSONDecodeError):
            await collect(stream)


async def test_stall_then_client_timeout_is_a_disconnect(azure_simulator):
    prompt, tag = tagged("[sim:stall after=1]")
    timeout = httpx2.Timeout(30.0, read=0.5)
    async with azure_client(azure_simulator, timeout=timeout) as client:
        stream = await client.chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True)
        with pytest.raises(APITimeoutError):
            await collect(stream)
    entry = await wait_for_entry(
        azure_simulator, lambda e: tag in json.dumps(e["json"]) and e["outcome"] is not None)
    assert entry["outcome"] == "client_disconnected"


async def test_client_closing_mid_stream_is_recorded(azure_simulator):
    prompt, tag = tagged("[sim:delay chunk=100] [sim:words 200]")
    async with azure_client(azure_simulator) as client:
        stream = await client.chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True)
        seen = 0
        async for chunk in stream:
            seen += bool(chunk.choices and chunk.choices[0].delta.content)
            if seen == 2:
                break
        await stream.close()
    entry = await wait_for_entry(
        azure_simulator, lambda e: tag in json.dumps(e["json"]) and e["outcome"] is not None)
    assert entry["outcome"] == "client_disconnected"


async def test_cancelling_during_time_to_first_token(azure_simulator):
    prompt, tag = tagged("[sim:delay ttft=30000]")
    async with azure_client(azure_simulator) as client:
        task = asyncio.ensure_future(
            client.chat.completions.create(model="gpt-4o", messages=user(prompt), stream=True))
        await wait_for_entry(azure_simulator, lambda e: tag in json.dumps(e["json"]))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    entry = await wait_for_entry(
        azure_simulator, lambda e: tag in json.dumps(e["json"]) and e["outcome"] is not None)
    assert entry["outcome"] == "client_disconnected"
