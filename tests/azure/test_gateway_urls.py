"""Every ``baseURL`` example of LibreChat's Azure guide and of config.md, on the wire.

Each row gives the file's ``baseURL`` as the guide writes it and the URL LibreChat builds from it.
Three things must agree with that URL: ``Target.request_url`` (what Lapis calls), the admin
preview (what the admin is shown), and the simulator's request log for the real streamed chat
request (aiohttp), the real SDK call (titles, summaries) and, where the group has one, the real
image request. On the wire the row's ``https://host`` becomes ``http://host:{simulator port}``
and every host resolves to 127.0.0.1, so host, path and query are the guide's own; the
simulator answers the gateway shapes through its ``path_prefixes`` and nothing else, so a
deployment appended twice (``.../{instance}/{deployment}/deployments/{deployment}/...``) is a 404.
"""

import re
import socket
from pathlib import Path

import aiohttp
import httpx2
import pytest
import yaml
from django.contrib.auth import get_user_model

from apps.azure.client import aclose_clients, client_for, complete_chat, stream_chat
from apps.azure.config import parse_config
from apps.azure.images import generate_image, legacy_image_models
from apps.azure.registry import Registry
from tests.simulator_fixture import SimulatorProcess

KEY = "sim-key"
INSTANCE = "sim-res"
DEPLOYMENT = "gpt-4o-mini"
VERSION = "2024-10-21"
HI = [{"role": "user", "content": "hi"}]
PREFIXES = (
    f"/{INSTANCE}",  # APIM: https://example.azure-api.net/{instance}/{deployment}
    f"/v1/ACCOUNT_TAG/GATEWAY/azure-openai/{INSTANCE}",  # Cloudflare AI Gateway (guide)
    f"/v1/cloudflareId/azure/azure-openai/{INSTANCE}",  # Cloudflare (object structure page)
    "/v1/ACCOUNT_TAG/GATEWAY/azure-openai/my-secret-instance",  # the guide's literal example
)
CUSTOM = "https://example.azure-api.net/sim-res/gpt-4o-mini"  # ${LAPIS_CUSTOM_BASEURL}

# (name, group fields, image model too?, the chat URL LibreChat builds)
CASES = [
    ("guide: APIM with placeholders",
     {"baseURL": "https://example.azure-api.net/${INSTANCE_NAME}/${DEPLOYMENT_NAME}"}, True,
     f"https://example.azure-api.net/{INSTANCE}/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("guide: Azure host with placeholders",
     {"baseURL": "https://${INSTANCE_NAME}.openai.azure.com/openai/deployments/${DEPLOYMENT_NAME}"}, True,
     f"https://{INSTANCE}.openai.azure.com/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("guide: Cloudflare AI Gateway with placeholders",
     {"baseURL": "https://gateway.ai.cloudflare.com/v1/ACCOUNT_TAG/GATEWAY/azure-openai/${INSTANCE_NAME}/${DEPLOYMENT_NAME}"}, True,
     f"https://gateway.ai.cloudflare.com/v1/ACCOUNT_TAG/GATEWAY/azure-openai/{INSTANCE}/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("object structure: Cloudflare with placeholders",
     {"baseURL": "https://gateway.ai.cloudflare.com/v1/cloudflareId/azure/azure-openai/${INSTANCE_NAME}/${DEPLOYMENT_NAME}"}, True,
     f"https://gateway.ai.cloudflare.com/v1/cloudflareId/azure/azure-openai/{INSTANCE}/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("guide: Cloudflare literal",
     {"baseURL": "https://gateway.ai.cloudflare.com/v1/ACCOUNT_TAG/GATEWAY/azure-openai/my-secret-instance/my-deployment",
      "deploymentName": "my-deployment"}, False,
     f"https://gateway.ai.cloudflare.com/v1/ACCOUNT_TAG/GATEWAY/azure-openai/my-secret-instance/my-deployment/chat/completions?api-version={VERSION}"),
    ("guide: Azure literal",
     {"baseURL": "https://instance-1.openai.azure.com/openai/deployments/deployment-1", "deploymentName": "deployment-1"}, False,
     f"https://instance-1.openai.azure.com/openai/deployments/deployment-1/chat/completions?api-version={VERSION}"),
    ("guide: the whole baseURL from a variable",
     {"baseURL": "${LAPIS_CUSTOM_BASEURL}"}, False,
     f"{CUSTOM}/chat/completions?api-version={VERSION}"),
    ("config.md: instanceName",
     {}, True,
     f"https://{INSTANCE}.openai.azure.com/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("config.md: endpoint",
     {"endpoint": f"https://{INSTANCE}.cognitiveservices.azure.com"}, True,
     f"https://{INSTANCE}.cognitiveservices.azure.com/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("config.md: a baseURL root that the deployment path hangs from",
     {"baseURL": "https://apim.example.net/openai"}, True,
     f"https://apim.example.net/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("config.md: a baseURL ending in /deployments",
     {"baseURL": "https://apim.example.net/openai/deployments"}, True,
     f"https://apim.example.net/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"),
    ("guide: serverless Mistral-large",
     {"baseURL": "https://Mistral-large-vnpet-serverless.region.inference.ai.azure.com/v1/chat/completions",
      "serverless": True}, False,
     "https://Mistral-large-vnpet-serverless.region.inference.ai.azure.com/v1/chat/completions"),
    ("guide: serverless Llama-2-70b-chat",
     {"baseURL": "https://Llama-2-70b-chat-qmvyb-serverless.region.inference.ai.azure.com/v1/chat/completions",
      "serverless": True}, False,
     "https://Llama-2-70b-chat-qmvyb-serverless.region.inference.ai.azure.com/v1/chat/completions"),
]
IDS = [case[0] for case in CASES]


def simulator_config():
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "apps/simulator/default.yaml").read_text())
    for name in ("my-deployment", "deployment-1"):
        data["deployments"][name] = {"model": "gpt-4o-mini-2024-07-18", "type": "chat"}
    return yaml.safe_dump(data)


@pytest.fixture(scope="module")
def gateway_sim():
    sim = SimulatorProcess(config_text=simulator_config(), api_key=KEY, path_prefixes=PREFIXES).start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
async def _clean():
    yield
    await aclose_clients()


def on_the_wire(url, port):
    """``https://host/...`` → ``http://host:port/...`` (placeholders in the host kept)."""
    return re.sub(r"^https://([^/]+)", lambda m: f"http://{m.group(1)}:{port}", url)


def config_text(fields, *, images, port=None):
    fields = dict(fields)
    serverless = fields.get("serverless")
    group = {"group": "g", "apiKey": "${LAPIS_GW_KEY}"}
    if not serverless:
        if "baseURL" not in fields and "endpoint" not in fields or "${INSTANCE_NAME}" in fields.get("baseURL", ""):
            group["instanceName"] = INSTANCE
        group["deploymentName"] = fields.pop("deploymentName", DEPLOYMENT)
        group["version"] = VERSION
    for name in ("baseURL", "endpoint"):
        if name in fields and port is not None and fields[name].startswith("https://"):
            fields[name] = on_the_wire(fields[name], port)
    group.update(fields)
    key = "mistral-large" if serverless else "gpt-4o-mini"
    group["models"] = {key: True}
    if images:
        group["models"]["dall-e-3"] = {"deploymentName": "dall-e-3", "version": "2024-02-01"}
    return yaml.safe_dump({"endpoints": {"azureOpenAI": {"groups": [group]}}}, sort_keys=False)


def registry(fields, *, images, port=None):
    environ = {"LAPIS_GW_KEY": KEY, "LAPIS_CUSTOM_BASEURL": on_the_wire(CUSTOM, port) if port else CUSTOM}
    text = config_text(fields, images=images, port=port)
    if port:  # the guide's hosts, served over plain http by the simulator: allowed by name
        hosts = re.findall(r"http://([^/:]+)", text + environ["LAPIS_CUSTOM_BASEURL"])
        environ["CONFIG_ALLOWED_ENDPOINT_HOSTS"] = ",".join(h.replace("${INSTANCE_NAME}", INSTANCE) for h in hosts)
    result = parse_config(text, environ=environ)
    assert result.errors == [], [str(p) for p in result.errors]
    return Registry(result.config)


class Loopback(aiohttp.abc.AbstractResolver):
    """Every host name resolves to 127.0.0.1 (the simulator), for the stream reader."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


class LoopbackTransport(httpx2.AsyncBaseTransport):
    """Every host goes to 127.0.0.1 (same port), for the SDK; the Host header stays as built."""

    def __init__(self):
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def sent(sim, url):
    """The expected wire URL as the simulator logs it: path and query."""
    parts = httpx2.URL(url)
    return parts.path, dict(parts.params.items())


@pytest.mark.parametrize(("name", "fields", "images", "expected"), CASES, ids=IDS)
def test_lapis_builds_librechats_url(name, fields, images, expected):
    spec = registry(fields, images=images).chat_models()[0]
    assert spec.target.request_url(spec.deployment) == expected
    if "LAPIS_CUSTOM_BASEURL" not in str(fields):
        assert spec.request_url == expected  # what the admin preview shows
    else:  # the variable's value is never shown
        assert spec.request_url == f"${{LAPIS_CUSTOM_BASEURL}}/chat/completions?api-version={VERSION}"


# An instanceName alone means https://{instance}.openai.azure.com, which can't be served here
# (test_client.py::test_instance_name_mode sends that one through the SDK with the host rewritten).
WIRE = [case for case in CASES if case[1]]


@pytest.mark.parametrize(("name", "fields", "images", "expected"), WIRE, ids=[case[0] for case in WIRE])
async def test_every_call_goes_to_librechats_url_on_the_wire(gateway_sim, name, fields, images, expected):
    port = httpx2.URL(gateway_sim.url).port
    specs = registry(fields, images=images, port=port)
    chat = specs.chat_models()[0]
    wire = on_the_wire(expected, port)
    assert chat.target.request_url(chat.deployment) == wire
    path, query = sent(gateway_sim, wire)
    gateway_sim.reset()

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=Loopback()))
    try:
        events = [event async for event in stream_chat(chat, HI, session=session)]
    finally:
        await session.close()
    async with httpx2.AsyncClient(transport=LoopbackTransport()) as http_client:
        completion = await complete_chat(chat, HI, client=client_for(chat, http_client=http_client))
        if images:
            image = specs.image_models()[0]
            picture = await generate_image(image, prompt="a lighthouse", http_client=http_client)
            assert picture.data
    assert any(type(event).__name__ == "TextDelta" for event in events)
    assert completion.text

    log = gateway_sim.requests()
    streamed, sdk = log[0], log[1]
    for entry in (streamed, sdk):
        assert (entry["path"], entry["query"]) == (path, query), entry["path"]
        assert entry["status"] == 200
    assert streamed["json"]["stream"] is True and not sdk["json"].get("stream")
    if images:
        image_path = path.replace(f"/{chat.deployment}/chat/completions", "/dall-e-3/images/generations")
        assert log[2]["path"] == image_path and log[2]["status"] == 200
    assert len(log) == 2 + bool(images)


def test_the_legacy_dalle3_baseurl_is_the_deployment_base():
    """DALLE3_BASEURL (the guide: ``https://<instance>.openai.azure.com/openai/deployments/<dalle3>/``)."""
    [spec] = legacy_image_models({
        "DALLE3_BASEURL": f"https://{INSTANCE}.openai.azure.com/openai/deployments/dalle3/",
        "DALLE3_API_KEY": KEY, "DALLE3_AZURE_API_VERSION": "2024-02-01",
    })
    assert spec.target.request_url(spec.deployment, "images/generations") == (
        f"https://{INSTANCE}.openai.azure.com/openai/deployments/dalle3/images/generations?api-version=2024-02-01"
    )
    assert spec.request_url == "${DALLE3_BASEURL}/images/generations?api-version=2024-02-01"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "fields", "images", "expected"), CASES, ids=IDS)
def test_the_admin_preview_shows_the_url_that_is_called(client, monkeypatch, name, fields, images, expected):
    from django.contrib.auth.models import Permission

    monkeypatch.setenv("LAPIS_GW_KEY", "gw-canary-key-5521")
    monkeypatch.setenv("LAPIS_CUSTOM_BASEURL", CUSTOM)
    user = get_user_model().objects.create_user("ops", password="pw-123456789", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_configversion", "activate_configversion"]))
    client.force_login(user)
    page = client.post("/admin/azure/configversion/add/", {"text": config_text(fields, images=images)})
    html = page.content.decode()
    assert 'data-testid="config-preview"' in html
    shown = expected if "LAPIS_CUSTOM_BASEURL" not in str(fields) else (
        f"${{LAPIS_CUSTOM_BASEURL}}/chat/completions?api-version={VERSION}"
    )
    assert f"<code>{shown}</code>" in html
    assert "gw-canary-key-5521" not in html
    assert "/deployments/gpt-4o-mini/deployments/" not in html
