"""useResponsesApi in the config, the Responses request on the wire (simulator's request log),
and the Entra guard: in tests and the demo, Entra never lets azure-identity reach the cloud
metadata address."""

import json

import pytest

from apps.azure import client
from apps.azure.client import (
    Finish,
    ReasoningDelta,
    TextDelta,
    Usage,
    aclose_clients,
    complete_chat,
)
from apps.azure.config import parse_config
from apps.azure.errors import UpstreamError
from apps.azure.registry import Registry
from apps.azure.responses import build_responses_body, stream_responses

ENV = {"LAPIS_KEY": "sim-key", "CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1,localhost"}


def config(group_body, models):
    text = "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
    text += "".join(f"        {line}\n" for line in group_body.strip().splitlines())
    text += "        models:\n" + "".join(f"          {line}\n" for line in models.strip().splitlines())
    return parse_config(text, environ=ENV)


def registry(group_body, models):
    result = config(group_body, models)
    assert result.errors == [], [str(p) for p in result.errors]
    return Registry(result.config)


@pytest.fixture(autouse=True)
async def _clean():
    yield
    await aclose_clients()


def test_group_and_model_level_flags_and_no_version_needed():
    reg = registry(
        "apiKey: ${LAPIS_KEY}\ninstanceName: res\ndeploymentName: dep\nuseResponsesApi: true",
        "gpt-5-codex: true\no4-mini: {deploymentName: o4}\ndall-e-3: {deploymentName: d3, version: '2024-02-01'}",
    )
    codex, mini, image = reg.get("gpt-5-codex"), reg.get("o4-mini"), reg.get("dall-e-3")
    assert codex.responses_api and mini.responses_api and not image.responses_api
    assert codex.request_url == "https://res.openai.azure.com/openai/v1/responses"
    reg = registry(
        'apiKey: ${LAPIS_KEY}\nendpoint: https://gw.example.org/team/openai\nversion: "2024-10-21"',
        "gpt-4o: {deploymentName: g}\no3: {deploymentName: o3, useResponsesApi: true}\n"
        "o1: {deploymentName: o1, useResponsesApi: true, version: preview}",
    )
    assert not reg.get("gpt-4o").responses_api and reg.get("o3").responses_api
    assert reg.get("o3").request_url == "https://gw.example.org/team/openai/v1/responses"
    assert reg.get("o1").request_url.endswith("/openai/v1/responses?api-version=preview")


@pytest.mark.parametrize(("group", "models", "expected"), [
    ("apiKey: k\ninstanceName: r\ndeploymentName: d\nuseResponsesApi: yes please", "gpt-4o: true",
     "useResponsesApi must be true or false"),
    ("apiKey: k\ninstanceName: r\ndeploymentName: d\nversion: '2024-10-21'\nforcePrompt: true\nuseResponsesApi: true",
     "gpt-35-turbo-instruct: true", "can't be combined with forcePrompt"),
    ("apiKey: k\ninstanceName: r\nversion: '2024-02-01'", "d3: {deploymentName: d3, type: image, useResponsesApi: true}",
     "useResponsesApi is for chat models"),
    ("apiKey: k\ninstanceName: r\ndeploymentName: d", "gpt-4o: true", "true needs the group's version"),
])
def test_bad_settings_say_what_and_where(group, models, expected):
    result = config(group, models)
    assert result.config is None
    assert any(expected in str(problem) for problem in result.errors), [str(p) for p in result.errors]
    assert all("line" in str(problem) for problem in result.errors)


def test_body_from_a_conversation():
    reg = registry("apiKey: k\ninstanceName: r\nuseResponsesApi: true\naddParams: {max_tokens: 900}",
                   "gpt-4.1: {deploymentName: g41}\no4-mini: {deploymentName: o4}")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"},
    ]
    body = build_responses_body(reg.get("gpt-4.1"), messages, params={"temperature": 0.2})
    assert body == {
        "model": "g41", "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Sure?"},
        ],
        "max_output_tokens": 900, "temperature": 0.2, "stream": True, "store": False,
    }
    reasoning = build_responses_body(reg.get("o4-mini"), messages[-1:], params={"temperature": 0.2})
    assert reasoning["reasoning"] == {"summary": "auto"} and "temperature" not in reasoning


async def collect(spec, text):
    return [e async for e in stream_responses(spec, [{"role": "user", "content": text}], idle_timeout=5)]


async def test_stream_over_http_through_a_gateway_base(azure_simulator):
    azure_simulator.reset()
    spec = registry(f"apiKey: ${{LAPIS_KEY}}\nbaseURL: {azure_simulator.url}/openai\nuseResponsesApi: true",
                    "o4-mini: {deploymentName: o4-mini}").get("o4-mini")
    events = await collect(spec, "Hi [sim:words 20]")
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    summary = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert len(text.split()) == 20 and summary.startswith("**Reading the question**")
    (finish,) = [e for e in events if isinstance(e, Finish)]
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert finish.reason == "stop" and usage.reasoning_tokens > 0
    (entry,) = azure_simulator.requests(deployment="o4-mini")
    assert entry["path"] == "/openai/v1/responses" and entry["query"] == {}
    assert entry["headers"]["api-key"] == "***"


async def test_a_body_that_ends_before_response_completed_is_broken(azure_simulator):
    spec = registry(f"apiKey: ${{LAPIS_KEY}}\nendpoint: {azure_simulator.url}\nuseResponsesApi: true",
                    "gpt-4o: {deploymentName: gpt-4o}").get("gpt-4o")
    with pytest.raises(UpstreamError) as caught:
        await collect(spec, "Hi [sim:words 40] [sim:drop after=3]")
    assert caught.value.code == "upstream_broken"


# ---- the Entra guard -----------------------------------------------------------------------

IDENTITY_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_CLIENT_ID",
                 "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE")


def entra_spec(url, *, responses):
    flag = "\nuseResponsesApi: true" if responses else ""
    return registry(f'authMode: entra\nendpoint: {url}\nversion: "2024-10-21"{flag}',
                    "gpt-4o: {deploymentName: gpt-4o}").get("gpt-4o")


@pytest.mark.parametrize("endpoint", [None, "http://169.254.169.254/metadata/identity/oauth2/token"])
@pytest.mark.parametrize("responses", [True, False])
async def test_entra_without_a_local_identity_endpoint_is_refused(monkeypatch, endpoint, responses):
    for name in IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)
    if endpoint:
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", "h")
    # The model's own URL is never reached either: the refusal comes before any request.
    spec = entra_spec("http://127.0.0.1:9", responses=responses)
    with pytest.raises(UpstreamError) as caught:
        if responses:
            await collect(spec, "hi")
        else:
            await complete_chat(spec, [{"role": "user", "content": "hi"}])
    assert caught.value.code == "auth_failed"
    assert "IDENTITY_ENDPOINT" in caught.value.admin_detail
    assert "metadata address" in caught.value.admin_detail
    assert client._credentials == {}  # no azure-identity credential was ever built


async def test_entra_with_the_local_endpoint_streams_responses(monkeypatch, azure_simulator):
    for name in IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_simulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", azure_simulator.identity_header)
    azure_simulator.reset()
    events = await collect(entra_spec(azure_simulator.url, responses=True), "Hi [sim:words 5]")
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    (entry,) = azure_simulator.requests(deployment="gpt-4o")
    assert entry["headers"]["authorization"] == "Bearer ***" and entry["status"] == 200
    assert any(e["path"] == "/msi/token" for e in azure_simulator.requests())


@pytest.mark.parametrize(("response_format", "text_format"), [
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "plan", "schema": {"type": "object"}, "strict": True}},
     {"type": "json_schema", "name": "plan", "schema": {"type": "object"}, "strict": True}),
])
async def test_a_response_format_goes_out_as_text_format_and_the_upstream_takes_it(
    azure_simulator, response_format, text_format
):
    """addParams written for chat/completions (``response_format``) reach a Responses model as
    ``text.format``, flat for json_schema; the simulator, like Azure, refuses the chat name."""
    azure_simulator.reset()
    spec = registry(
        f"apiKey: ${{LAPIS_KEY}}\nendpoint: {azure_simulator.url}\nuseResponsesApi: true\n"
        f"addParams:\n  response_format: {json.dumps(response_format)}",
        "gpt-4o: {deploymentName: gpt-4o}").get("gpt-4o")
    assert build_responses_body(spec, [{"role": "user", "content": "x"}])["text"] == {"format": text_format}
    events = await collect(spec, "Answer in JSON [sim:words 5]")
    assert any(isinstance(e, TextDelta) for e in events)
    (entry,) = azure_simulator.requests("gpt-4o")
    assert entry["status"] == 200 and "response_format" not in entry["json"]
    assert entry["json"]["text"] == {"format": text_format}
