"""Image generation through the real openai SDK: DALL-E 3 URLs, gpt-image-1 b64, DALL-E 2 polling."""

import asyncio
import base64
import io
import time

import httpx2
import pytest
from openai import BadRequestError
from PIL import Image

from apps.simulator import images
from tests.simulator.helpers import azure_client

DALLE3_VERSION = "2024-02-01"
GPT_IMAGE_VERSION = "2025-04-01-preview"
DALLE2_VERSION = "2023-06-01-preview"


def png(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


async def test_dalle3_url_is_a_real_png_on_the_simulator(azure_simulator):
    async with azure_client(azure_simulator, version=DALLE3_VERSION) as client:
        result = await client.images.generate(
            model="dall-e-3", prompt="A lighthouse at dusk", size="1792x1024", quality="hd",
            style="natural")
    item = result.data[0]
    assert item.url.startswith(azure_simulator.url + "/_sim/images/")
    assert item.revised_prompt.startswith("A lighthouse at dusk")
    assert item.model_extra["content_filter_results"]["violence"]["filtered"] is False
    async with httpx2.AsyncClient() as http:
        fetched = await http.get(item.url)
        tampered = await http.get(item.url.replace(".png", "x.png"))
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert png(fetched.content).size == (1792, 1024)
    assert tampered.status_code == 404


async def test_dalle3_b64_and_pictures_depend_on_the_prompt(azure_simulator):
    async with azure_client(azure_simulator, version=DALLE3_VERSION) as client:
        one = await client.images.generate(model="dall-e-3", prompt="red fox", response_format="b64_json")
        two = await client.images.generate(model="dall-e-3", prompt="blue whale", response_format="b64_json")
        again = await client.images.generate(model="dall-e-3", prompt="red fox", response_format="b64_json")
    first = base64.b64decode(one.data[0].b64_json)
    assert png(first).size == (1024, 1024)
    assert first == base64.b64decode(again.data[0].b64_json)
    assert first != base64.b64decode(two.data[0].b64_json)


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"n": 2}, "n"),
        ({"size": "512x512"}, "size"),
        ({"quality": "ultra"}, "quality"),
        ({"style": "baroque"}, "style"),
        ({"prompt": "x" * 4001}, "prompt"),
    ],
)
async def test_dalle3_rules(azure_simulator, options, param):
    body = {"model": "dall-e-3", "prompt": "a cat", **options}
    async with azure_client(azure_simulator, version=DALLE3_VERSION) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.images.generate(**body)
    assert caught.value.param == param and caught.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("prompt", ["[sim:filter_prompt category=sexual] a portrait", "something forbidden"])
async def test_image_content_policy(azure_simulator, prompt):
    async with azure_client(azure_simulator, version=DALLE3_VERSION) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.images.generate(model="dall-e-3", prompt=prompt)
    assert caught.value.code == "content_policy_violation"
    inner = caught.value.body["inner_error"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert any(result.get("filtered") for result in inner["content_filter_results"].values())


async def test_gpt_image_is_always_b64(azure_simulator):
    async with azure_client(azure_simulator, version=GPT_IMAGE_VERSION) as client:
        result = await client.images.generate(
            model="gpt-image-1", prompt="a teapot", size="1536x1024", quality="low", n=2)
        with pytest.raises(BadRequestError) as bad_size:
            await client.images.generate(model="gpt-image-1", prompt="a teapot", size="1792x1024")
    assert len(result.data) == 2 and all(item.url is None for item in result.data)
    assert png(base64.b64decode(result.data[0].b64_json)).size == (1536, 1024)
    assert result.usage.output_tokens > 0
    assert bad_size.value.param == "size"


async def test_dalle2_submit_and_poll(azure_simulator):
    async with azure_client(azure_simulator, version=DALLE2_VERSION) as client:
        submitted = await client.post(
            "/images/generations:submit", cast_to=httpx2.Response,
            body={"prompt": "a paper boat", "size": "512x512", "n": 1})
        assert submitted.status_code == 202
        assert submitted.json()["status"] == "notRunning"
        location = submitted.headers["operation-location"]
        assert location.startswith(azure_simulator.url + "/openai/operations/images/")
        statuses = []
        path = location.split("/openai", 1)[1].split("?")[0]
        while True:
            poll = await client.get(path, cast_to=httpx2.Response)
            body = poll.json()
            statuses.append(body["status"])
            if body["status"] not in ("notRunning", "running"):
                break
            await asyncio.sleep(0.01)
    assert statuses == ["notRunning", "running", "succeeded"]
    assert body["id"] == submitted.json()["id"] and body["expires"] > body["created"]
    async with httpx2.AsyncClient() as http:
        fetched = await http.get(body["result"]["data"][0]["url"])
    assert png(fetched.content).size == (512, 512)


async def test_dalle2_blocked_prompt_fails_the_operation(azure_simulator):
    headers = {"api-key": azure_simulator.api_key}
    query = f"?api-version={DALLE2_VERSION}"
    async with httpx2.AsyncClient() as http:
        submitted = await http.post(
            f"{azure_simulator.url}/openai/images/generations:submit{query}", headers=headers,
            json={"prompt": "forbidden things"})
        location = submitted.headers["operation-location"]
        for _ in range(3):
            body = (await http.get(location, headers=headers)).json()
        missing = await http.get(
            f"{azure_simulator.url}/openai/operations/images/nope{query}", headers=headers)
    assert body["status"] == "failed" and body["error"]["code"] == "contentFilter"
    assert missing.status_code == 404


def test_image_urls_expire():
    secret = b"s" * 32
    token, expires = images.sign_image(secret, prompt="p", size="256x256", ttl=3600, now=1000)
    assert expires == 4600
    assert images.verify_image(secret, token, now=4599) == ("p", "256x256")
    assert images.verify_image(secret, token, now=4600) is None
    assert images.verify_image(b"t" * 32, token, now=2000) is None
    assert images.verify_image(secret, token, now=time.time()) is None
