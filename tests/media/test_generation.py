"""Image generation through the real openai SDK over HTTP against the simulator, then storing."""

import asyncio
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from apps.azure import images as azure_images
from apps.azure.client import aclose_clients
from apps.azure.errors import UpstreamError
from apps.azure.registry import Registry
from apps.media import images

pytestmark = pytest.mark.django_db

DALLE2_VERSION = "2023-06-01-preview"


def generate(model, **options):
    """Run generate_image on a fresh event loop, closing the SDK clients it made."""

    async def run():
        try:
            return await azure_images.generate_image(model, **options)
        finally:
            await aclose_clients()

    return asyncio.run(run())


@pytest.fixture
def sim(azure_simulator):
    azure_simulator.reset()
    return azure_simulator


@pytest.fixture
def registry(sim, activate_config):
    return activate_config(sim.config_yaml())


@pytest.fixture
def dalle2(sim, activate_config):
    registry = activate_config(
        sim.config_yaml(image_models={"dall-e-2": {"deploymentName": "dall-e-2", "version": DALLE2_VERSION}})
    )
    return registry.get("dall-e-2")


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("gina", password="Zebra-crossing-42!")


def calls(sim, prefix):
    return [entry for entry in sim.requests() if entry["path"].startswith(prefix)]


def size_of(data):
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def test_dalle3_url_is_fetched_from_the_upstream_and_stored(sim, registry, owner, settings):
    model = registry.get("dall-e-3")
    result = generate(model, prompt="a lighthouse at dawn", size="1792x1024", response_format="url")
    assert result.content_type == "image/png" and size_of(result.data) == ("PNG", (1792, 1024))
    assert result.revised_prompt.startswith("a lighthouse at dawn")
    (post,) = calls(sim, "/openai/deployments/dall-e-3/images/generations")
    assert post["json"]["response_format"] == "url" and post["json"]["style"] == "vivid"
    assert post["query"]["api-version"] == "2024-02-01"
    (fetch,) = calls(sim, "/_sim/images/")
    assert fetch["method"] == "GET" and fetch["status"] == 200
    assert not any(key.lower() in ("api-key", "authorization") for key in fetch["headers"])

    attachment = images.store_generated_image(
        owner=owner,
        conversation=None,
        generated=result,
        prompt="a lighthouse at dawn",
        model_key=model.key,
        size="1792x1024",
        style="vivid",
    )
    assert attachment.kind == "generated" and attachment.content_type == "image/png"
    assert (attachment.width, attachment.height) == (1792, 1024)
    assert attachment.revised_prompt == result.revised_prompt and attachment.size == "1792x1024"
    client = Client()
    client.force_login(owner)
    response = client.get(f"/media/{attachment.pk}/?download=1")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="lapis-a-lighthouse-at-dawn.png"'
    thumb = client.get(f"/media/{attachment.pk}/thumbnail/")
    assert size_of(thumb.content) == ("PNG", (320, 183))


def test_dalle3_asks_for_b64_json_by_default(sim, registry):
    result = generate(registry.get("dall-e-3"), prompt="a cat", quality="hd", style="natural")
    assert size_of(result.data) == ("PNG", (1024, 1024))
    (post,) = calls(sim, "/openai/deployments/dall-e-3/")
    assert post["json"]["response_format"] == "b64_json"
    assert (post["json"]["quality"], post["json"]["style"]) == ("hd", "natural")
    assert calls(sim, "/_sim/images/") == []


def test_gpt_image_1_gives_b64(sim, registry):
    result = generate(registry.get("gpt-image-1"), prompt="a teapot", size="1536x1024", quality="low")
    assert size_of(result.data) == ("PNG", (1536, 1024)) and result.revised_prompt is None
    (post,) = calls(sim, "/openai/deployments/gpt-image-1/images/generations")
    assert "response_format" not in post["json"] and "style" not in post["json"]
    assert post["query"]["api-version"] == "2025-04-01-preview"


def test_dalle2_submits_and_polls(sim, dalle2, owner):
    result = generate(dalle2, prompt="a paper boat", size="512x512")
    assert size_of(result.data) == ("PNG", (512, 512))
    (submit,) = calls(sim, "/openai/images/generations:submit")
    assert submit["status"] == 202 and submit["query"]["api-version"] == DALLE2_VERSION
    polls = calls(sim, "/openai/operations/images/")
    assert len(polls) == 3 and all(p["query"]["api-version"] == DALLE2_VERSION for p in polls)
    assert len(calls(sim, "/_sim/images/")) == 1
    stored = images.store_generated_image(
        owner=owner, conversation=None, generated=result, prompt="a paper boat", model_key="dall-e-2"
    )
    assert (stored.width, stored.height) == (512, 512)


def test_dalle2_content_policy_failure(sim, dalle2):
    with pytest.raises(UpstreamError) as excinfo:
        generate(dalle2, prompt="something forbidden")
    assert excinfo.value.code == "content_policy"
    assert "content policy refused this image prompt" in excinfo.value.message


def test_content_policy_block_is_reported_as_such(sim, registry):
    with pytest.raises(UpstreamError) as excinfo:
        generate(registry.get("dall-e-3"), prompt="a forbidden scene")
    error = excinfo.value
    assert error.code == "content_policy" and error.status == 400
    assert error.message == (
        "Azure's content policy refused this image prompt: violence (severity high). "
        "Rephrase it and try again."
    )
    assert error.filter_results["violence"]["filtered"] is True
    assert sim.api_key not in error.admin_detail and "dall-e-3" in error.admin_detail


def test_choices_the_model_does_not_offer_are_refused_before_sending(sim, registry):
    with pytest.raises(UpstreamError, match="DALL-E 3 offers size 1024x1024, 1792x1024, 1024x1792"):
        generate(registry.get("dall-e-3"), prompt="x", size="512x512")
    with pytest.raises(UpstreamError, match="gpt-image-1 has no style choice"):
        generate(registry.get("gpt-image-1"), prompt="x", style="vivid")
    with pytest.raises(UpstreamError, match="at most 4,000"):
        generate(registry.get("dall-e-3"), prompt="x" * 4001)
    assert sim.requests() == []


def test_image_options_per_family(registry):
    assert azure_images.image_options(registry.get("dall-e-3"))["styles"] == ["vivid", "natural"]
    assert azure_images.image_options(registry.get("gpt-image-1"))["qualities"][0] == "medium"


def legacy_environ(sim, **extra):
    return {
        "DALLE3_BASEURL": f"{sim.url}/openai/deployments/dall-e-3",
        "DALLE3_API_KEY": sim.api_key,
        "DALLE3_AZURE_API_VERSION": "2024-02-01",
        "DALLE3_SYSTEM_PROMPT": "Always draw in watercolour.",
        "DALLE2_BASEURL": f"{sim.url}/openai",
        "DALLE2_API_KEY": sim.api_key,
        "DALLE2_AZURE_API_VERSION": DALLE2_VERSION,
        **extra,
    }


def test_legacy_dalle_variables(sim):
    environ = legacy_environ(sim)
    dalle3, dalle2 = azure_images.legacy_image_models(environ)
    assert (dalle3.key, dalle3.deployment, dalle3.type, dalle3.group) == (
        "dall-e-3", "dall-e-3", "image", "environment"
    )
    assert sim.api_key not in repr(dalle3) and sim.api_key not in repr(dalle3.target)
    assert azure_images.image_system_prompt(dalle3, environ=environ) == "Always draw in watercolour."
    assert azure_images.available_image_models(Registry(), environ=environ) == [dalle3, dalle2]

    result = generate(dalle3, prompt="a legacy kite", response_format="url")
    assert size_of(result.data) == ("PNG", (1024, 1024))
    (post,) = calls(sim, "/openai/deployments/dall-e-3/images/generations")
    assert post["query"]["api-version"] == "2024-02-01"
    assert size_of(generate(dalle2, prompt="a legacy boat", size="256x256").data) == ("PNG", (256, 256))


def test_legacy_variables_yield_to_the_file_and_need_all_three(sim, registry):
    environ = legacy_environ(sim)
    assert [m.key for m in azure_images.available_image_models(registry, environ=environ)] == [
        "dall-e-3",
        "gpt-image-1",
    ]
    assert azure_images.legacy_image_models({"DALLE3_BASEURL": f"{sim.url}/x"}) == []
    assert azure_images.legacy_image_models({}) == []


class HostileUpstream:
    """An 'Azure' whose image answers point elsewhere: a foreign URL, or a redirect to one."""

    def __init__(self, elsewhere):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                url = upstream.answer_url.replace("{self}", upstream.url)
                body = json.dumps({"created": 1, "data": [{"url": url, "revised_prompt": "x"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                upstream.gets.append(self.path)
                self.send_response(302)
                self.send_header("location", elsewhere)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.gets = []
        self.answer_url = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(sim):
    server = HostileUpstream(elsewhere=f"{sim.url}/_sim/images/anything.png")
    yield server
    server.close()


def test_image_urls_on_another_host_are_not_fetched(sim, hostile):
    model = azure_images.legacy_image_models(
        {
            "DALLE3_BASEURL": f"{hostile.url}/openai/deployments/dall-e-3",
            "DALLE3_API_KEY": "hostile-test-key",
            "DALLE3_AZURE_API_VERSION": "2024-02-01",
        }
    )[0]
    hostile.answer_url = f"{sim.url}/_sim/images/anything.png"
    with pytest.raises(UpstreamError) as excinfo:
        generate(model, prompt="p", response_format="url")
    assert excinfo.value.code == "upstream_protocol"
    assert "another site" in excinfo.value.message and "hostile-test-key" not in excinfo.value.admin_detail

    hostile.answer_url = "{self}/blob/image.png"
    with pytest.raises(UpstreamError, match="another site"):
        generate(model, prompt="p", response_format="url")
    assert hostile.gets == ["/blob/image.png"]
    assert sim.requests() == []


def test_fetch_size_cap(sim, registry, monkeypatch):
    monkeypatch.setattr(azure_images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(UpstreamError, match="too large to keep"):
        generate(registry.get("dall-e-3"), prompt="a big one", response_format="url")


def test_overall_timeout_while_polling(sim, dalle2):
    with pytest.raises(UpstreamError) as excinfo:
        generate(dalle2, prompt="a slow boat", timeout=0.3)
    assert excinfo.value.code == "upstream_stalled"
    assert excinfo.value.message == "The image was not ready within 0.3 seconds. Try again."


def test_bad_key_maps_to_auth_failed(sim):
    model = azure_images.legacy_image_models(legacy_environ(sim, DALLE3_API_KEY="wrong-key-123"))[0]
    with pytest.raises(UpstreamError) as excinfo:
        generate(model, prompt="p")
    assert excinfo.value.code == "auth_failed" and "wrong-key-123" not in excinfo.value.admin_detail


def test_a_non_image_answer_is_refused_on_store(owner, settings):
    generated = azure_images.GeneratedImage(data=b"<html>hi</html>", content_type="text/html")
    with pytest.raises(images.ImageRejected, match="the generated image is not a PNG"):
        images.store_generated_image(
            owner=owner, conversation=None, generated=generated, prompt="p", model_key="dall-e-3"
        )
    assert not settings.MEDIA_ROOT.exists() or not any(settings.MEDIA_ROOT.rglob("*.*"))


def test_image_links_allowed_only_from_the_upstream_or_azure_blob_storage():
    from apps.azure.images import _may_fetch

    upstream = ("https", "contoso.openai.azure.com", 443)
    allowed = [
        "https://contoso.openai.azure.com/images/1.png",
        "https://dalleprodsec.blob.core.windows.net/private/images/1.png?sig=x",
    ]
    refused = [
        "http://dalleprodsec.blob.core.windows.net/private/images/1.png",  # not HTTPS
        "https://blob.core.windows.net.evil.example/1.png",
        "https://evilblob.core.windows.net.example/1.png",
        "https://xblob.core.windows.netx/1.png",
        "https://169.254.169.254/latest/meta-data",
        "http://contoso.openai.azure.com/images/1.png",  # another origin: scheme differs
    ]
    assert all(_may_fetch(url, upstream) for url in allowed)
    assert not any(_may_fetch(url, upstream) for url in refused)
