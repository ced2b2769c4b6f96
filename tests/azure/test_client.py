"""Request building through the real openai SDK against a local recording server.

instanceName mode: ``https://{name}.openai.azure.com`` can't be reached here, so the test checks
the computed URL and then sends the real SDK request through ``client_for(spec, http_client=...)``
with an httpx2 transport that rewrites only the scheme/host/port to the local recorder; the path,
query, headers (including the original ``Host``) and body are exactly what the SDK built.
"""

import asyncio
import os

import aiohttp
import httpx2
import pytest

from apps.azure.client import (
    Finish,
    TextDelta,
    Usage,
    aclose_clients,
    client_for,
    complete_chat,
    merge_params,
    stream_chat,
    stream_url,
)
from apps.azure.config import parse_config
from apps.azure.errors import UpstreamError
from apps.azure.registry import Registry
from tests.azure.recorder import IDENTITY_HEADER, Recorder

CANARY = "canary-key-9d7e1b"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def recorder():
    server = Recorder().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
async def _clean(recorder):
    recorder.reset()
    yield
    await aclose_clients()


def registry(yaml_text, **environ):
    # The recorder listens on loopback; KEY is this file's own variable name.
    allowed = {"CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1", "CONFIG_ALLOWED_VARIABLE_PREFIXES": "KEY,GW_TOKEN"}
    result = parse_config(yaml_text, environ={"KEY": CANARY, **allowed, **environ})
    assert result.errors == [], [str(p) for p in result.errors]
    return Registry(result.config)


def group(body, *, key="gpt-4o"):
    return "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n" + "".join(
        f"        {line}\n" for line in body.strip().splitlines()
    ) + f"        models:\n          {key}: true\n"


async def run(spec, **kwargs):
    return [event async for event in stream_chat(spec, HI, **kwargs)]


async def test_endpoint_mode(recorder):
    spec = registry(group(f'apiKey: ${{KEY}}\nendpoint: {recorder.url}\ndeploymentName: dep\nversion: "2024-10-21"\nadditionalHeaders:\n  x-cost-center: research')).get("gpt-4o")
    events = await run(spec)
    assert events == [TextDelta("hel"), TextDelta("lo"), Finish("stop", None), Usage(3, 2)]
    request = recorder.posts()[-1]
    assert request["path"] == "/openai/deployments/dep/chat/completions"
    assert request["query"] == {"api-version": ["2024-10-21"]}
    assert request["headers"]["api-key"] == CANARY
    assert "authorization" not in request["headers"]
    assert request["headers"]["x-cost-center"] == "research"
    assert request["json"]["stream_options"] == {"include_usage": True}
    assert spec.request_url == f"{recorder.url}/openai/deployments/dep/chat/completions?api-version=2024-10-21"


class RewriteHost(httpx2.AsyncBaseTransport):
    """Send every request to ``target`` (scheme, host, port only); everything else untouched."""

    def __init__(self, target):
        self.target = httpx2.URL(target)
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        request.url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


async def test_instance_name_mode(recorder):
    spec = registry(group('apiKey: ${KEY}\ninstanceName: contoso-ne\ndeploymentName: gpt4o-ne\nversion: "2024-10-21"')).get("gpt-4o")
    assert spec.target.base_url.reveal() == "https://contoso-ne.openai.azure.com"
    assert spec.request_url == "https://contoso-ne.openai.azure.com/openai/deployments/gpt4o-ne/chat/completions?api-version=2024-10-21"
    async with httpx2.AsyncClient(transport=RewriteHost(recorder.url)) as http_client:
        client = client_for(spec, http_client=http_client)
        await complete_chat(spec, HI, client=client)
    request = recorder.posts()[-1]
    assert request["headers"]["host"] == "contoso-ne.openai.azure.com"
    assert request["path"] == "/openai/deployments/gpt4o-ne/chat/completions"
    assert request["headers"]["api-key"] == CANARY
    # The stream reader's URL for this target is the one the SDK sent (the host can't be reached
    # here; every other part of its request is compared on the wire below).
    assert stream_url(spec.target, spec.deployment, "chat/completions") == (
        f"https://{request['headers']['host']}{request['path']}"
    )


async def test_base_url_with_placeholders(recorder):
    base = f"{recorder.url}/aoai/${{INSTANCE_NAME}}/deployments/${{DEPLOYMENT_NAME}}"
    spec = registry(group(f'apiKey: ${{KEY}}\ninstanceName: apim\ndeploymentName: gpt35\nversion: "2024-06-01"\nbaseURL: "{base}"', key="gpt-35-turbo")).get("gpt-35-turbo")
    events = await run(spec)
    request = recorder.posts()[-1]
    assert request["path"] == "/aoai/apim/deployments/gpt35/chat/completions"
    assert request["query"] == {"api-version": ["2024-06-01"]}
    assert "stream_options" not in request["json"]  # 2024-06-01 predates stream_options
    assert Usage not in {type(e) for e in events}
    assert spec.request_url.endswith("/aoai/${INSTANCE_NAME}/deployments/${DEPLOYMENT_NAME}/chat/completions?api-version=2024-06-01".replace("${INSTANCE_NAME}", "apim").replace("${DEPLOYMENT_NAME}", "gpt35"))


async def test_base_url_as_root(recorder):
    spec = registry(group(f'apiKey: ${{KEY}}\ndeploymentName: dep\nversion: "2024-10-21"\nbaseURL: "{recorder.url}/proxy"')).get("gpt-4o")
    await run(spec)
    assert recorder.posts()[-1]["path"] == "/proxy/deployments/dep/chat/completions"


@pytest.mark.parametrize("version", [None, "2024-05-01-preview"])
async def test_serverless(recorder, version):
    extra = f'\nversion: "{version}"' if version else ""
    spec = registry(group(f'apiKey: ${{KEY}}\nserverless: true\nbaseURL: "{recorder.url}/v1/chat/completions"{extra}', key="phi-4")).get("phi-4")
    await run(spec)
    request = recorder.posts()[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {CANARY}"
    assert request["headers"]["api-key"] == CANARY
    assert request["json"]["model"] == "phi-4"
    assert request["query"] == ({"api-version": [version]} if version else {})


async def test_force_prompt(recorder):
    spec = registry(group(f'apiKey: ${{KEY}}\nendpoint: {recorder.url}\ndeploymentName: d\nversion: "2024-10-21"\nforcePrompt: true', key="gpt-35-turbo-instruct")).get("gpt-35-turbo-instruct")
    assert spec.type == "completion"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    events = [e async for e in stream_chat(spec, messages)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hello"
    request = recorder.posts()[-1]
    assert request["path"] == "/openai/deployments/d/completions"
    assert "messages" not in request["json"]
    assert request["json"]["prompt"] == "System: Be brief.\n\nUser: hi\n\nAssistant:"
    completion = await complete_chat(spec, messages)
    assert completion.text == "hello"


async def test_entra_with_real_azure_identity(recorder, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{recorder.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    spec = registry(group(f'authMode: entra\nendpoint: {recorder.url}\ndeploymentName: dep\nversion: "2024-10-21"')).get("gpt-4o")
    await run(spec)
    token_requests = [r for r in recorder.requests if r["path"] == "/msi/token"]
    assert token_requests and token_requests[0]["query"]["resource"] == ["https://cognitiveservices.azure.com"]
    request = recorder.posts()[-1]
    assert request["headers"]["authorization"] == f"Bearer {recorder.token}"
    assert "api-key" not in request["headers"]


def test_params_merge_and_reasoning():
    reg = registry(
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n        apiKey: k\n        instanceName: r\n"
        '        deploymentName: d\n        version: "2024-12-01-preview"\n        addParams: {max_tokens: 4096, seed: 1}\n'
        "        dropParams: [frequency_penalty]\n        models:\n          gpt-4.1: true\n          o3-mini: true\n          gpt-5: {maxOutput: 100}\n"
    )
    user = {"temperature": 0.3, "max_tokens": 10, "frequency_penalty": 1, "seed": 9}
    assert merge_params(reg.get("gpt-4.1"), user) == {"temperature": 0.3, "max_tokens": 4096, "seed": 1}
    assert merge_params(reg.get("o3-mini"), user) == {"max_completion_tokens": 4096, "seed": 1}
    assert merge_params(reg.get("gpt-5"), {}) == {"max_completion_tokens": 4096, "seed": 1}


def error_spec(recorder):
    return registry(group(f'apiKey: ${{KEY}}\nendpoint: {recorder.url}\ndeploymentName: dep-x\nversion: "2024-10-21"')).get("gpt-4o")


@pytest.mark.parametrize(
    "marker,code,in_message",
    [
        ("[rec:429]", "rate_limited", "7 seconds"),
        ("[rec:filter]", "content_filter_prompt", "violence (severity high)"),
        ("[rec:ctx]", "context_length_exceeded", "too long"),
        ("[rec:401]", "auth_failed", "authenticate"),
        ("[rec:404]", "deployment_not_found", "not available"),
        ("[rec:500]", "upstream_error", "server error"),
        ("[rec:echo_key]", "bad_request", "gateway: bad api-key ••••"),
    ],
)
async def test_error_mapping(recorder, marker, code, in_message):
    spec = error_spec(recorder)
    with pytest.raises(UpstreamError) as info:
        [e async for e in stream_chat(spec, [{"role": "user", "content": f"x {marker}"}])]
    error = info.value
    assert error.code == code and in_message in error.message
    assert CANARY not in error.message + error.admin_detail + repr(error)
    if code == "deployment_not_found":
        assert 'group "g"' in error.admin_detail and "dep-x" in error.admin_detail
        assert "dep-x" not in error.message
    if code == "rate_limited":
        assert error.retry_after == 7
    if code == "content_filter_prompt":
        assert error.filter_results["violence"]["severity"] == "high"


async def test_a_secret_in_the_base_url_is_not_echoed_back(recorder):
    """A gateway token in baseURL's path, echoed in a gateway's error, stays masked."""
    token = "gw-token-5e2a9c"
    spec = registry(
        group(f'apiKey: ${{KEY}}\nbaseURL: {recorder.url}/t/${{GW_TOKEN}}\ndeploymentName: d\nversion: "2024-10-21"'),
        GW_TOKEN=token,
    ).get("gpt-4o")
    with pytest.raises(UpstreamError) as info:
        [e async for e in stream_chat(spec, [{"role": "user", "content": "x [rec:echo_path]"}])]
    error = info.value
    assert "gateway: no route /t/••••/" in error.message
    assert token not in error.message + error.admin_detail + repr(error)


async def test_idle_timeout_is_stalled_and_closes_response(recorder):
    spec = error_spec(recorder)
    events = []
    with pytest.raises(UpstreamError) as info:
        async for event in stream_chat(spec, [{"role": "user", "content": "[rec:stall]"}], idle_timeout=0.5):
            events.append(event)
    assert info.value.code == "upstream_stalled"
    assert events == [TextDelta("partial")]
    for _ in range(100):
        if recorder.disconnects:
            break
        await asyncio.sleep(0.05)
    assert recorder.disconnects >= 1


async def test_cancelling_the_consumer_closes_the_response(recorder):
    spec = error_spec(recorder)
    before = recorder.disconnects
    got_first = asyncio.Event()

    async def consume():
        async for _ in stream_chat(spec, [{"role": "user", "content": "[rec:stall]"}], idle_timeout=30):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if recorder.disconnects > before:
            break
        await asyncio.sleep(0.05)
    assert recorder.disconnects > before


async def test_clients_are_reused_per_target(recorder):
    spec = error_spec(recorder)
    other = registry(group(f'apiKey: ${{KEY}}\nendpoint: {recorder.url}\ndeploymentName: dep-y\nversion: "2024-10-21"')).get("gpt-4o")
    third = registry(group(f'apiKey: ${{KEY}}\nendpoint: {recorder.url}\ndeploymentName: dep-y\nversion: "2024-06-01"')).get("gpt-4o")
    assert client_for(spec) is client_for(spec) is client_for(other)
    assert client_for(third) is not client_for(spec)


PARITY_CASES = {
    "endpoint": 'apiKey: ${KEY}\nendpoint: {url}\ndeploymentName: dep\nversion: "2024-10-21"\nadditionalHeaders:\n  x-cost-center: research',
    "base-placeholders": 'apiKey: ${KEY}\ninstanceName: apim\ndeploymentName: gpt35\nversion: "2024-06-01"\nbaseURL: "{url}/aoai/${INSTANCE_NAME}/deployments/${DEPLOYMENT_NAME}"',
    "base-root": 'apiKey: ${KEY}\ndeploymentName: dep\nversion: "2024-10-21"\nbaseURL: "{url}/proxy"',
    "serverless": 'apiKey: ${KEY}\nserverless: true\nbaseURL: "{url}/v1/chat/completions"',
    "serverless-versioned": 'apiKey: ${KEY}\nserverless: true\nbaseURL: "{url}/models/chat/completions"\nversion: "2024-05-01-preview"',
    "v1": 'apiKey: ${KEY}\nserverless: true\nbaseURL: "{url}/openai/v1"',
    "headers": 'apiKey: ${KEY}\nendpoint: {url}\ndeploymentName: dep\nversion: "2024-10-21"\nadditionalHeaders:\n  x-team: blue\n  x-cost-center: ${KEY}',
    "force-prompt": 'apiKey: ${KEY}\nendpoint: {url}\ndeploymentName: d\nversion: "2024-10-21"\nforcePrompt: true',
    "entra": 'authMode: entra\nendpoint: {url}\ndeploymentName: dep\nversion: "2024-10-21"',
}
WIRE_HEADERS = ("host", "api-key", "authorization", "content-type", "x-cost-center", "x-team", "user-agent")


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
async def test_the_reader_sends_what_the_sdk_sends(recorder, monkeypatch, case):
    """Every target kind: Lapis's streamed request and the SDK's request agree on the wire
    (path, query, auth and extra headers, body apart from the stream fields)."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{recorder.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    body = PARITY_CASES[case].replace("{url}", recorder.url)
    key = "gpt-35-turbo-instruct" if case == "force-prompt" else "phi-4" if "serverless" in case or case == "v1" else "gpt-4o"
    spec = registry(group(body, key=key)).get(key)
    await run(spec)
    await complete_chat(spec, HI)
    streamed, sdk = recorder.posts()[-2:]
    assert streamed["path"] == sdk["path"] and streamed["query"] == sdk["query"]
    for name in WIRE_HEADERS:
        assert streamed["headers"].get(name) == sdk["headers"].get(name), name
    stream_only = ("stream", "stream_options")
    assert {k: v for k, v in streamed["json"].items() if k not in stream_only} == {
        k: v for k, v in sdk["json"].items() if k not in stream_only
    }
    assert streamed["json"]["stream"] is True
    if case == "headers":
        assert streamed["headers"]["x-team"] == "blue" and streamed["headers"]["x-cost-center"] == CANARY
    if case == "entra":
        assert streamed["headers"]["authorization"] == f"Bearer {recorder.token}"


class CountingSession:
    """A real aiohttp session that counts the connection attempts it makes (a trace hook)."""

    def __init__(self):
        self.attempts = 0
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_start.append(self._count)
        self.session = aiohttp.ClientSession(trace_configs=[trace])

    async def _count(self, *args):
        self.attempts += 1

    async def close(self):
        await self.session.close()


@pytest.fixture
def never_accepts():
    """A listening socket whose accept queue is full: a new connection is never accepted
    (the kernel drops its SYN), as with a black-holed address, but bounded and local."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue (its length is backlog + 1 on Linux)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    for sock in [*fillers, server]:
        sock.close()


async def test_a_connect_timeout_is_one_attempt_not_three(never_accepts, monkeypatch):
    import apps.azure.client as client_module

    monkeypatch.setattr(client_module, "CONNECT_TIMEOUT", 1.5)  # 10 s in production
    spec = registry(group(f'apiKey: ${{KEY}}\nendpoint: {never_accepts}\ndeploymentName: d\nversion: "2024-10-21"')).get("gpt-4o")
    counting = CountingSession()
    try:
        with pytest.raises(UpstreamError) as info:
            [e async for e in stream_chat(spec, HI, session=counting.session)]
    finally:
        await counting.close()
    assert info.value.code == "upstream_unreachable"
    assert "did not accept the connection within 1.5 seconds" in info.value.message
    assert "connect timeout" in info.value.admin_detail
    assert counting.attempts == 1, "a connect timeout must not be retried (3 × 10 s before)"


async def test_a_refused_connection_is_retried_then_unreachable():
    spec = registry(group('apiKey: ${KEY}\nendpoint: http://127.0.0.1:9\ndeploymentName: d\nversion: "2024-10-21"')).get("gpt-4o")
    counting = CountingSession()
    try:
        with pytest.raises(UpstreamError) as info:
            [e async for e in stream_chat(spec, HI, session=counting.session)]
    finally:
        await counting.close()
    assert info.value.code == "upstream_unreachable" and "could not reach" in info.value.message
    assert counting.attempts == 3  # the SDK's policy: two more attempts before the first byte


def test_the_idle_timeout_comes_from_the_environment():
    import subprocess
    import sys

    from tests.live import ROOT

    code = "from apps.chat.generation import idle_timeout; print(idle_timeout())"
    run = lambda value: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", "shell", "-v0", "-c", code], cwd=ROOT,
        env={**os.environ, "CHAT_IDLE_TIMEOUT": value}, capture_output=True, text=True,
    )
    assert run("7").stdout.strip() == "7.0"
    refused = run("0")
    assert refused.returncode != 0
    assert "CHAT_IDLE_TIMEOUT must be between 1 and 3600 seconds, not 0" in refused.stderr


@pytest.mark.parametrize("fault", ["[sim:malformed after=3]", "[sim:error_event after=3]"])
async def test_text_before_a_bad_event_in_the_same_read_is_kept(azure_simulator, fault):
    """At zero delay the text chunks and the bad event arrive together: the text still comes
    out before the error."""
    spec = registry(
        group(f'apiKey: {azure_simulator.api_key}\nendpoint: {azure_simulator.url}\ndeploymentName: gpt-4o\nversion: "2024-10-21"')
    ).get("gpt-4o")
    events = []
    with pytest.raises(UpstreamError):
        async for event in stream_chat(spec, [{"role": "user", "content": f"x [sim:words 50] {fault} [sim:delay ttft=0 chunk=0]"}]):
            events.append(event)
    assert len([e for e in events if isinstance(e, TextDelta)]) == 3


async def test_the_stream_goes_through_the_environment_proxy(recorder, monkeypatch):
    """HTTP(S)_PROXY is honoured as by the SDK (the recorder plays a plain HTTP proxy)."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", recorder.url)
    spec = registry(
        group('apiKey: ${KEY}\nendpoint: http://contoso.invalid:8080\ndeploymentName: dep\nversion: "2024-10-21"'),
        CONFIG_ALLOWED_ENDPOINT_HOSTS="contoso.invalid",
    ).get("gpt-4o")
    events = await run(spec)
    assert events[-2:] == [Finish("stop", None), Usage(3, 2)]
    request = recorder.posts()[-1]
    assert request["path"] == "/openai/deployments/dep/chat/completions"
    assert request["headers"]["host"] == "contoso.invalid:8080"
