"""The OpenAI-compatible API with the official openai SDK, over real HTTP, against a live Lapis
whose models are the simulator's deployments."""

import base64
import json
import math
import struct
import urllib.request

import openai
import pytest

from tests.gateway.conftest import API_MAX_BYTES, make_key, sdk

TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def alice(lapis):
    return make_key(lapis, "alice")


def usage_rows(server, username):
    code = (
        "from apps.chat.models import UsageRecord;import json;"
        f"print(json.dumps(list(UsageRecord.objects.filter(user__username={username!r})"
        ".order_by('id').values('purpose','model_key','deployment','prompt_tokens','completion_tokens','estimated'))))"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


def test_models_are_the_keys_models_by_lapis_name(lapis, alice):
    listed = [m.id for m in sdk(lapis, alice).models.list()]
    # Chat and embedding models open to alice; not the premium model, not the image models.
    assert listed == ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "text-embedding-3-small", "ada",
                      "whisper", "tts", "mistral-large", "tuned-4o", "entra-mini"]
    premium = make_key(lapis, "paula", groups=("api-users", "premium"))
    assert "premium-4o" in [m.id for m in sdk(lapis, premium).models.list()]
    assert sdk(lapis, alice).models.retrieve("gpt-4o").owned_by == "simulator"


def test_chat_not_streamed_goes_to_the_deployment_and_records_usage(lapis, alice, azure_simulator):
    azure_simulator.reset()
    answer = sdk(lapis, alice).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[sim:echo] hello gateway"}],
        temperature=0.3,
    )
    assert "hello gateway" in answer.choices[0].message.content
    assert answer.usage.prompt_tokens > 0
    (call,) = azure_simulator.requests(deployment="gpt-4o-mini")
    assert call["path"] == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert call["json"]["temperature"] == 0.3 and call["json"]["stream"] is False
    rows = [r for r in usage_rows(lapis, "alice") if r["model_key"] == "gpt-4o-mini"]
    assert rows[-1]["purpose"] == "api" and rows[-1]["prompt_tokens"] == answer.usage.prompt_tokens
    assert rows[-1]["completion_tokens"] == answer.usage.completion_tokens and not rows[-1]["estimated"]


def test_chat_streamed_with_and_without_usage(lapis, alice, azure_simulator):
    client = sdk(lapis, alice)
    whole = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[sim:words 30] stream me"}],
    ).choices[0].message.content
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[sim:words 30] stream me"}],
        stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.choices for c in chunks[:-1])  # Azure's prompt-filter chunk is not passed on
    assert chunks[-2].choices[0].finish_reason == "stop"
    plain = list(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[sim:words 30] stream me"}], stream=True,
    ))
    assert all(c.usage is None and c.choices for c in plain)
    # Lapis still asked Azure for usage, to record it.
    assert azure_simulator.requests(deployment="gpt-4o")[-1]["json"]["stream_options"] == {"include_usage": True}
    rows = [r for r in usage_rows(lapis, "alice") if r["model_key"] == "gpt-4o"]
    assert rows[-1]["completion_tokens"] == chunks[-1].usage.completion_tokens and not rows[-1]["estimated"]


def test_routed_through_the_groups_as_chat_is(lapis, alice, azure_simulator):
    """addParams win over the caller, dropParams remove; serverless and Entra groups work."""
    client = sdk(lapis, alice)
    azure_simulator.reset()
    client.chat.completions.create(model="tuned-4o", messages=[{"role": "user", "content": "hi"}],
                                   temperature=0.9, frequency_penalty=0.5, max_tokens=50)
    (call,) = azure_simulator.requests(deployment="gpt-4o")
    assert (call["json"]["top_p"], call["json"]["temperature"], call["json"]["max_tokens"]) == (0.5, 0.2, 50)
    assert "frequency_penalty" not in call["json"]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="mistral-large", messages=[{"role": "user", "content": "[sim:echo] serverless"}], stream=True)
        if c.choices)
    assert "serverless" in streamed
    (call,) = azure_simulator.requests(deployment="serverless")
    assert call["path"] == "/v1/chat/completions" and call["json"]["model"] == "mistral-large"
    assert call["headers"]["authorization"] == "Bearer ***"
    answer = client.chat.completions.create(model="entra-mini", messages=[{"role": "user", "content": "[sim:echo] entra"}])
    assert "entra" in answer.choices[0].message.content
    (call,) = azure_simulator.requests(deployment="gpt-4o-mini")
    assert call["headers"]["authorization"] == "Bearer ***" and "api-key" not in call["headers"]


def test_tools_streamed_and_not(lapis, alice):
    client = sdk(lapis, alice)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    prompt = [{"role": "user", "content": '[sim:tool name=get_weather args={"city":"Oslo"}] weather?'}]
    answer = client.chat.completions.create(model="gpt-4o", messages=prompt, tools=tools)
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert answer.choices[0].finish_reason == "tool_calls"
    arguments = ""
    for chunk in client.chat.completions.create(model="gpt-4o", messages=prompt, tools=tools, stream=True):
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += piece.function.arguments or ""
    assert json.loads(arguments) == {"city": "Oslo"}


def test_response_format_and_group_params(lapis, alice, azure_simulator):
    client = sdk(lapis, alice)
    with pytest.raises(openai.BadRequestError) as refused:  # Azure's rule, passed on
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                       response_format={"type": "json_object"})
    assert "json" in refused.value.message
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "answer in json"}],
                                   response_format={"type": "json_object"})
    assert azure_simulator.requests(deployment="gpt-4o")[-1]["json"]["response_format"] == {"type": "json_object"}


def test_images_as_data_urls(lapis, alice):
    client = sdk(lapis, alice)
    content = [{"type": "text", "text": "[sim:report] what is this?"},
               {"type": "image_url", "image_url": {"url": TINY_PNG, "detail": "low"}}]
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    report = json.loads(answer.choices[0].message.content.removeprefix("REPORT "))
    assert report["images"] == 1 and report["details"] == ["low"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-35-turbo", messages=[{"role": "user", "content": content}])
    assert refused.value.code == "images_not_supported" and "does not take images" in refused.value.message


def test_embeddings_float_base64_and_dimensions(lapis, alice, azure_simulator):
    client = sdk(lapis, alice)
    # The SDK asks for base64 unless told otherwise, and decodes it.
    result = client.embeddings.create(model="text-embedding-3-small",
                                      input=["the cat sat on the mat", "a cat sat on a mat", "stock markets fell"])
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [1536] * 3
    assert azure_simulator.requests(deployment="text-embedding-3-small")[-1]["path"] == (
        "/openai/deployments/text-embedding-3-small/embeddings")

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    floats = client.embeddings.create(model="text-embedding-3-small", input="the cat sat on the mat",
                                      encoding_format="float")
    assert max(abs(x - y) for x, y in zip(floats.data[0].embedding, vectors[0], strict=True)) < 1e-6
    short = client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=256)
    assert len(short.data[0].embedding) == 256
    assert math.isclose(sum(x * x for x in short.data[0].embedding), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError) as refused:  # Azure's own refusal, passed on
        client.embeddings.create(model="ada", input="hello", dimensions=256)
    assert "dimensions" in refused.value.message
    with pytest.raises(openai.BadRequestError) as wrong:
        client.embeddings.create(model="gpt-4o", input="hello")
    assert wrong.value.code == "wrong_model_type"
    rows = [r for r in usage_rows(lapis, "alice") if r["purpose"] == "embedding"]
    assert rows and rows[0]["prompt_tokens"] == result.usage.prompt_tokens


def test_simulator_embeddings_wire(azure_simulator):
    """The simulator answers the embeddings route as Azure does (floats and base64)."""
    def post(body):
        request = urllib.request.Request(
            azure_simulator.url + "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
            data=json.dumps(body).encode(), headers={"api-key": azure_simulator.api_key,
                                                     "content-type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    floats = post({"input": "hello world"})
    assert floats["object"] == "list" and floats["data"][0]["object"] == "embedding"
    packed = post({"input": "hello world", "encoding_format": "base64"})["data"][0]["embedding"]
    decoded = struct.unpack("<1536f", base64.b64decode(packed))
    assert max(abs(a - b) for a, b in zip(decoded, floats["data"][0]["embedding"], strict=True)) < 1e-6
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_revoked_and_expired_keys_are_refused(lapis):
    key = make_key(lapis, "rita")
    client = sdk(lapis, key)
    assert client.models.list().data
    lapis.shell("from apps.gateway.models import ApiKey;from django.utils import timezone;"
                f"ApiKey.objects.filter(prefix={key[:12]!r}).update(revoked=timezone.now())")
    with pytest.raises(openai.AuthenticationError) as revoked:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "revoked" in revoked.value.message and revoked.value.code == "invalid_api_key"
    other = make_key(lapis, "rita")
    lapis.shell("from apps.gateway.models import ApiKey;from django.utils import timezone;"
                "from datetime import timedelta;"
                f"ApiKey.objects.filter(prefix={other[:12]!r}).update(expires=timezone.now()-timedelta(seconds=1))")
    with pytest.raises(openai.AuthenticationError) as expired:
        sdk(lapis, other).models.list()
    assert "expired" in expired.value.message
    with pytest.raises(openai.AuthenticationError):
        sdk(lapis, "lapis-not-a-real-key").models.list()


def test_a_user_without_the_group_permission_is_refused(lapis):
    key = make_key(lapis, "gus", groups=("no-api",), grant=False)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk(lapis, key).models.list()
    assert refused.value.code == "api_keys_not_enabled"


def test_a_model_the_user_may_not_use_is_403(lapis, alice, azure_simulator):
    azure_simulator.reset()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk(lapis, alice).chat.completions.create(model="premium-4o", messages=[{"role": "user", "content": "hi"}])
    assert "premium" in refused.value.message and refused.value.code == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk(lapis, alice).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    assert azure_simulator.requests() == []  # nothing reached Azure


def test_over_budget_is_429_with_a_clear_message(lapis, azure_simulator):
    key = make_key(lapis, "bea")
    client = sdk(lapis, key, max_retries=2)
    # Set before the first call: the server caches a user's budget list, and a change made in
    # another process reaches it through the shared cache (Redis), not the default per-process one.
    lapis.shell("from apps.governance.models import Budget;from django.contrib.auth import get_user_model;"
                "Budget.objects.create(user=get_user_model().objects.get(username='bea'), period='day', tokens=10)")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[sim:words 50] spend"}])
    azure_simulator.reset()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "more"}])
    error = refused.value
    assert "of 10 tokens allowed today" in error.message and error.code == "insufficient_quota"
    assert error.response.headers["x-should-retry"] == "false" and int(error.response.headers["retry-after"]) > 0
    assert azure_simulator.requests() == []  # refused before Azure, and not retried by the SDK
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="hi")


def test_rate_limit_is_429_with_retry_after(lapis, azure_simulator):
    key = make_key(lapis, "rob")
    lapis.shell("from apps.governance.models import RateLimit;from django.contrib.auth import get_user_model;"
                "RateLimit.objects.create(user=get_user_model().objects.get(username='rob'), answers_per_minute=1)")
    client = sdk(lapis, key)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "two"}], stream=True)
    headers = refused.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and refused.value.code == "rate_limit_exceeded"
    assert "this minute" in refused.value.message


def test_azure_rate_limit_is_passed_on_with_retry_after(lapis, alice):
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(lapis, alice).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[sim:429 retry_after=30] busy"}], stream=True)
    assert refused.value.response.headers["retry-after"] == "30"


def raw(lapis, method, path, *, body=None, headers=None):
    request = urllib.request.Request(lapis.url + path, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_the_api_never_answers_html(lapis, alice):
    auth = {"Authorization": f"Bearer {alice}", "Content-Type": "application/json"}
    cases = [
        ("GET", "/v1/nothing-here", None, auth, 404),
        ("GET", "/v1/chat/completions", None, auth, 405),
        ("POST", "/v1/chat/completions", b"{not json", auth, 400),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-4o", "messages": []}', auth, 400),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-4o"}', {"Content-Type": "application/json"}, 401),
        ("GET", "/v1/models", None, {**auth, "Host": "evil.example"}, 400),  # Django's DisallowedHost page
        ("POST", "/v1/embeddings", b"x" * (API_MAX_BYTES + 1), auth, 413),  # the server's bound
        ("POST", "/v1/models", b"{}", auth, 405),
    ]
    for method, path, body, headers, status in cases:
        got, answer_headers, content = raw(lapis, method, path, body=body, headers=headers)
        assert got == status, (method, path, got, content[:200])
        assert answer_headers["Content-Type"].startswith("application/json"), (path, content[:200])
        error = json.loads(content)["error"]
        assert error["message"] and "type" in error and "code" in error, error


def test_the_body_limit_for_api_chat_is_raised(lapis, alice):
    # Over REQUEST_MAX_BYTES (64 KB), under API_REQUEST_MAX_BYTES: a chat with a large image.
    padding = "A" * 120_000
    content = [{"type": "text", "text": "[sim:report] big"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + padding}}]
    answer = sdk(lapis, alice).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert json.loads(answer.choices[0].message.content.removeprefix("REPORT "))["images"] == 1
    status, _, content = raw(lapis, "POST", "/v1/models/x", body=b"x" * 70_000,
                             headers={"Authorization": f"Bearer {alice}"})
    assert status == 413 and json.loads(content)["error"]["code"] == "request_too_large"


def test_the_running_slot_is_freed_when_a_stream_ends_or_the_caller_leaves(lapis, azure_simulator):
    key = make_key(lapis, "sam")
    lapis.shell("from apps.governance.models import RateLimit;from django.contrib.auth import get_user_model;"
                "RateLimit.objects.create(user=get_user_model().objects.get(username='sam'), answers_at_once=1)")
    client = sdk(lapis, key)
    list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one"}], stream=True))
    azure_simulator.reset()
    long = client.chat.completions.create(
        model="gpt-4o", stream=True,
        messages=[{"role": "user", "content": "[sim:words 3000] [sim:delay chunk=20] long"}])
    next(iter(long))
    with pytest.raises(openai.RateLimitError) as busy:  # one at once: the stream holds the slot
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "two"}])
    assert "at once" in busy.value.message
    long.close()  # the caller leaves mid-stream
    for _ in range(50):
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "three"}])
            break
        except openai.RateLimitError:
            import time
            time.sleep(0.1)
    else:
        pytest.fail("the running slot was not freed after the caller left")
    outcomes = [e["outcome"] for e in azure_simulator.requests(deployment="gpt-4o") if "long" in json.dumps(e["json"])]
    assert outcomes == ["client_disconnected"]  # Lapis closed the upstream stream too


def test_speech_and_transcription_round_trip(lapis, alice, azure_simulator):
    client = sdk(lapis, alice)
    spoken = client.audio.speech.create(model="tts", voice="alloy", input="hello from the gateway",
                                        response_format="wav")
    audio = spoken.read()
    assert audio.startswith(b"RIFF") and audio[8:12] == b"WAVE"
    assert spoken.response.headers["content-type"] == "audio/wav"
    (call,) = [e for e in azure_simulator.requests(deployment="tts")][-1:]
    assert call["path"] == "/openai/deployments/tts/audio/speech" and call["json"]["voice"] == "alloy"
    text = client.audio.transcriptions.create(model="whisper", file=("hello.wav", audio, "audio/wav"))
    assert text.text == "hello from the gateway"
    assert azure_simulator.requests(deployment="whisper")[-1]["path"] == "/openai/deployments/whisper/audio/transcriptions"
    verbose = client.audio.transcriptions.create(model="whisper", file=("hello.wav", audio),
                                                 response_format="verbose_json", language="en")
    assert verbose.duration > 0 and verbose.language == "english"
    plain = client.audio.transcriptions.create(model="whisper", file=("hello.wav", audio), response_format="text")
    assert plain.strip() == "hello from the gateway"
    with pytest.raises(openai.BadRequestError) as wrong:
        client.audio.speech.create(model="whisper", voice="alloy", input="hi")
    assert wrong.value.code == "wrong_model_type"
    with pytest.raises(openai.BadRequestError) as bad_voice:  # Azure's refusal, passed on
        client.audio.speech.create(model="tts", voice="nobody", input="hi")
    assert "voice" in bad_voice.value.message
    rows = [r for r in usage_rows(lapis, "alice") if r["purpose"] == "audio"]
    assert len(rows) >= 4 and all(r["estimated"] for r in rows)
