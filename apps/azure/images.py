"""Image generation against Azure OpenAI deployments (owner: media).

``generate_image(model, *, prompt, ...)`` returns a ``GeneratedImage`` or raises ``UpstreamError``:

- DALL-E 3 and gpt-image-1: ``images.generate`` of the SDK client that ``apps.azure.client`` builds
  for the model's target (same URL, api-version, key or Entra token, headers).
- DALL-E 2: Azure's asynchronous flow, ``POST {endpoint}/openai/images/generations:submit`` then
  polling ``/openai/operations/images/{id}``, sent through that same client (``client.post/get``
  with ``cast_to=httpx2.Response``) so auth and retries are the SDK's.
- Results given as ``b64_json`` are decoded; results given as a URL are fetched only from the
  origin (scheme, host, port) of the upstream that answered: no redirect elsewhere, at most
  ``MAX_IMAGE_BYTES``, within the call's overall timeout, or over HTTPS from the blob-storage
  hosts where Azure keeps generated images (``settings.IMAGE_URL_HOSTS``). DALL-E 3 asks for
  ``b64_json`` by default (one request, nothing to fetch); ``response_format="url"`` gets a URL.

``legacy_image_models()`` turns the ``DALLE3_*`` / ``DALLE2_*`` variables into ModelSpecs for
when the active config has no image model; ``available_image_models(registry)`` picks.
"""

import asyncio
import base64
import binascii
import logging
import os
import re
from dataclasses import dataclass, field

import httpx2
import openai
from django.conf import settings

from apps.azure.errors import UpstreamError

logger = logging.getLogger("lapis.azure")

MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_REDIRECTS = 3
POLL_FIRST_DELAY = 0.25
POLL_MAX_DELAY = 4.0
OPERATION_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")

# What each family accepts (azure-wire.md "Images"); the first of each list is the default.
FAMILIES = {
    "dall-e-3": {
        "label": "DALL-E 3",
        "sizes": ("1024x1024", "1792x1024", "1024x1792"),
        "qualities": ("standard", "hd"),
        "styles": ("vivid", "natural"),
        "max_prompt": 4000,
    },
    "dall-e-2": {
        "label": "DALL-E 2",
        "sizes": ("1024x1024", "512x512", "256x256"),
        "qualities": (),
        "styles": (),
        "max_prompt": 1000,
    },
    "gpt-image": {
        "label": "gpt-image-1",
        "sizes": ("1024x1024", "1024x1536", "1536x1024"),
        "qualities": ("medium", "low", "high"),
        "styles": (),
        "max_prompt": 32000,
    },
}
LEGACY = (("DALLE3", "dall-e-3", "DALL-E 3"), ("DALLE2", "dall-e-2", "DALL-E 2"))


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes = field(repr=False)
    content_type: str
    revised_prompt: str | None = None


# ---- models -------------------------------------------------------------------------------


def family(model):
    """``"dall-e-2"``, ``"dall-e-3"`` or ``"gpt-image"``, from the model key or deployment name."""
    text = f"{model.key} {model.deployment or ''}".lower()
    for name in ("dall-e-2", "gpt-image", "dall-e-3"):
        if name in text:
            return name
    return "dall-e-3"


def image_options(model):
    """What the picker may offer for ``model``: sizes, qualities, styles (first = default)."""
    spec = FAMILIES[family(model)]
    return {key: list(value) if isinstance(value, tuple) else value for key, value in spec.items()}


def image_system_prompt(model, *, environ=None):
    """``DALLE3_SYSTEM_PROMPT`` (or ``DALLE2_…``) for the image tool's instructions, if set."""
    environ = os.environ if environ is None else environ
    prefix = "DALLE2" if family(model) == "dall-e-2" else "DALLE3"
    return environ.get(f"{prefix}_SYSTEM_PROMPT") or None


def legacy_image_models(environ=None):
    """ModelSpecs (type "image", group "environment") from ``DALLE3_*`` / ``DALLE2_*`` variables.

    A family is offered when its ``_BASEURL``, ``_API_KEY`` and ``_AZURE_API_VERSION`` are all
    set; the key lives only in the spec's Target as a Secret (never in repr or messages).
    """
    from apps.azure.config import Secret
    from apps.azure.registry import ModelSpec, Target, base_url_shape

    environ = os.environ if environ is None else environ
    models = []
    for prefix, key, label in LEGACY:
        names = [f"{prefix}_BASEURL", f"{prefix}_API_KEY", f"{prefix}_AZURE_API_VERSION"]
        values = [environ.get(name, "").strip() for name in names]
        if not any(values):
            continue
        if not all(values):
            missing = ", ".join(name for name, value in zip(names, values, strict=True) if not value)
            logger.warning("%s image generation is off: %s not set", label, missing)
            continue
        base_url, api_key, version = values
        found = re.search(r"/deployments/([^/?#]+)", base_url)
        deployment = found.group(1) if found else key
        target = Target(
            kind="azure",
            base_url=Secret(base_url.rstrip("/"), f"${{{prefix}_BASEURL}}"),
            shape=base_url_shape(base_url, deployment),
            api_version=version,
            auth_mode="apiKey",
            api_key=Secret(api_key, f"${{{prefix}_API_KEY}}"),
            headers=(),
        )
        models.append(
            ModelSpec(
                key=key,
                label=label,
                group="environment",
                deployment=deployment,
                api_version=version,
                type="image",
                context_window=0,
                max_output=None,
                vision=False,
                force_prompt=False,
                serverless=False,
                auth_mode="apiKey",
                simulated=False,
                target=target,
            )
        )
    return models


def available_image_models(registry, *, environ=None):
    """The active config's image models, or the legacy variables' when the config has none."""
    configured = registry.image_models()
    # A user's view (apps.azure.access) with none allowed must not fall back to the variables.
    full = getattr(registry, "registry", registry)
    return configured if configured or full.image_models() else legacy_image_models(environ)


# ---- generation ---------------------------------------------------------------------------


def _where(model):
    return f'group "{model.group}", model "{model.key}", deployment "{model.deployment}"'


def _check_request(model, *, prompt, size, quality, style):
    spec = FAMILIES[family(model)]
    label = spec["label"]
    if not prompt or not prompt.strip():
        raise UpstreamError("bad_request", "Describe the image you want: the prompt is empty.")
    if len(prompt) > spec["max_prompt"]:
        raise UpstreamError(
            "bad_request",
            f"The prompt is {len(prompt):,} characters; {label} takes at most {spec['max_prompt']:,}.",
        )
    for name, value, allowed in (
        ("size", size, spec["sizes"]),
        ("quality", quality, spec["qualities"]),
        ("style", style, spec["styles"]),
    ):
        if value is None:
            continue
        if not allowed:
            raise UpstreamError("bad_request", f"{label} has no {name} choice.")
        if value not in allowed:
            raise UpstreamError(
                "bad_request", f"{label} offers {name} {', '.join(allowed)}, not {value!r}."
            )


async def generate_image(
    model,
    *,
    prompt,
    size=None,
    quality=None,
    style=None,
    timeout=120.0,
    response_format=None,
    http_client=None,
):
    """One image for ``prompt`` from the image ``model`` (a ModelSpec), within ``timeout`` seconds.

    Returns GeneratedImage(data, content_type, revised_prompt). Raises UpstreamError: code
    ``content_policy`` when Azure's content policy refuses the prompt, ``bad_request`` for a
    choice the model does not offer, ``upstream_stalled`` when the overall timeout passes,
    ``upstream_protocol`` for an answer Lapis will not use (e.g. a URL on another host).
    ``http_client`` (tests) is handed to ``apps.azure.client.client_for``.
    """
    _check_request(model, prompt=prompt, size=size, quality=quality, style=style)
    try:
        async with asyncio.timeout(timeout):
            if family(model) == "dall-e-2":
                return await _dalle2(model, prompt=prompt, size=size, http_client=http_client)
            return await _generate(
                model,
                prompt=prompt,
                size=size,
                quality=quality,
                style=style,
                response_format=response_format,
                timeout=timeout,
                http_client=http_client,
            )
    except TimeoutError:
        raise UpstreamError(
            "upstream_stalled",
            f"The image was not ready within {timeout:g} seconds. Try again.",
            admin_detail=f"{_where(model)}: image generation timed out after {timeout:g} s",
        ) from None


async def _generate(model, *, prompt, size, quality, style, response_format, timeout, http_client):
    from apps.azure.client import client_for

    kind = family(model)
    request = {"model": model.deployment or model.key, "prompt": prompt, "n": 1}
    if size:
        request["size"] = size
    if quality:
        request["quality"] = quality
    if kind == "dall-e-3":
        request["style"] = style or "vivid"
        request["response_format"] = response_format or "b64_json"
    client = client_for(model, http_client=http_client)
    try:
        result = await client.images.generate(**request, timeout=timeout)
    except openai.APIError as exc:
        raise _map_error(exc, model) from None
    if not result.data:
        raise UpstreamError(
            "upstream_protocol",
            "The image service answered without an image. Try again.",
            admin_detail=f"{_where(model)}: images/generations answered with no data",
        )
    item = result.data[0]
    if item.b64_json:
        data = _decode_b64(item.b64_json, model)
    elif item.url:
        data = await _fetch(item.url, model=model, upstream=_origin(model.target.base_url.reveal()))
    else:
        raise UpstreamError(
            "upstream_protocol",
            "The image service answered without an image. Try again.",
            admin_detail=f"{_where(model)}: image item has neither b64_json nor url",
        )
    return GeneratedImage(data=data, content_type=sniff(data), revised_prompt=item.revised_prompt)


def _endpoint_root(model):
    """``scheme://host[:port]`` plus any path before ``/openai`` of the model's target."""
    base = model.target.base_url.reveal().rstrip("/")
    return re.split(r"/openai(?:/|$)", base, maxsplit=1)[0]


async def _dalle2(model, *, prompt, size, http_client):
    from apps.azure.client import _scrubbed, client_for

    client = client_for(model, http_client=http_client)
    root = _endpoint_root(model)
    upstream = _origin(root)
    body = {"prompt": prompt, "n": 1, "size": size or "1024x1024"}
    try:
        submitted = await client.post(
            f"{root}/openai/images/generations:submit", cast_to=httpx2.Response, body=body
        )
        operation = _json(submitted, model)
        poll_url = _poll_url(submitted, operation, root=root, upstream=upstream, model=model)
        delay = POLL_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_DELAY)
            answer = _json(await client.get(poll_url, cast_to=httpx2.Response), model)
            status = answer.get("status")
            if status in ("notRunning", "running"):
                continue
            break
    except openai.APIError as exc:
        raise _map_error(exc, model) from None
    if status == "succeeded":
        items = ((answer.get("result") or {}).get("data")) or []
        url = items[0].get("url") if items and isinstance(items[0], dict) else None
        if not url:
            raise UpstreamError(
                "upstream_protocol",
                "The image service answered without an image. Try again.",
                admin_detail=f"{_where(model)}: DALL-E 2 operation succeeded without a URL",
            )
        data = await _fetch(url, model=model, upstream=upstream)
        return GeneratedImage(data=data, content_type=sniff(data), revised_prompt=None)
    if status == "failed":
        error = answer.get("error") or {}
        if str(error.get("code", "")).lower() in ("contentfilter", "content_policy_violation"):
            raise _policy_error(model, error.get("message"), None)
        raise UpstreamError(
            "upstream_error",
            "The image service could not make this image. Try again.",
            admin_detail=f"{_where(model)}: DALL-E 2 operation failed: {_short(_scrubbed(str(error.get('message') or ''), model))}",
        )
    raise UpstreamError(
        "upstream_protocol",
        "The image service answered in a way Lapis does not understand.",
        admin_detail=f"{_where(model)}: DALL-E 2 operation status {status!r}",
    )


def _poll_url(submitted, operation, *, root, upstream, model):
    location = submitted.headers.get("operation-location")
    if location:
        url = httpx2.URL(location)
        if _origin(str(url)) == upstream:
            # Without its query: the client adds api-version itself.
            return str(url.copy_with(query=None))
    operation_id = str(operation.get("id") or "")
    if not OPERATION_ID.match(operation_id):
        raise UpstreamError(
            "upstream_protocol",
            "The image service answered in a way Lapis does not understand.",
            admin_detail=f"{_where(model)}: DALL-E 2 submit gave no usable operation id",
        )
    return f"{root}/openai/operations/images/{operation_id}"


def _json(response, model):
    try:
        value = response.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(
            "upstream_protocol",
            "The image service answered in a way Lapis does not understand.",
            admin_detail=f"{_where(model)}: {response.status_code} answer is not a JSON object",
        )
    return value


# ---- results ------------------------------------------------------------------------------


def _origin(url):
    parsed = httpx2.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, port


def _may_fetch(url, upstream):
    """Image links are fetched from the upstream's own origin, or over HTTPS from the storage
    hosts where Azure really keeps generated images (``IMAGE_URL_HOSTS``, by default
    ``*.blob.core.windows.net``); any other host, redirects included, is refused."""
    origin = _origin(url)
    if origin == upstream:
        return True
    host = (origin[1] or "").lower()
    return origin[0] == "https" and any(
        host.endswith(suffix) and host != suffix.lstrip(".")
        for suffix in settings.IMAGE_URL_HOSTS
    )


def _decode_b64(text, model):
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise _too_big(model)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UpstreamError(
            "upstream_protocol",
            "The image service sent an image Lapis could not read.",
            admin_detail=f"{_where(model)}: b64_json is not valid base64",
        ) from None


def _too_big(model):
    return UpstreamError(
        "upstream_protocol",
        "The generated image is too large to keep.",
        admin_detail=f"{_where(model)}: image over {MAX_IMAGE_BYTES} bytes",
    )


def _foreign(model, url, upstream):
    host = httpx2.URL(url).host or "(none)"
    return UpstreamError(
        "upstream_protocol",
        "The image service sent a link to another site; Lapis does not fetch it.",
        admin_detail=(
            f"{_where(model)}: image URL host {host} is not the upstream {upstream[1]}:{upstream[2]}; "
            "not fetched"
        ),
    )


async def _fetch(url, *, model, upstream):
    """The bytes at ``url``, which must be on ``upstream``'s origin (redirects too), capped.

    No credentials are sent: Azure image URLs carry their own short-lived signature.
    """
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30.0) as http:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                if not _may_fetch(url, upstream):
                    raise _foreign(model, url, upstream)
            except (ValueError, TypeError, httpx2.InvalidURL):
                raise _foreign(model, str(url), upstream) from None
            try:
                async with http.stream("GET", url) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code != 200:
                        raise UpstreamError(
                            "upstream_error",
                            "The generated image could not be downloaded (its link may have expired).",
                            admin_detail=f"{_where(model)}: image URL answered {response.status_code}",
                            status=response.status_code,
                        )
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
                        raise _too_big(model)
                    chunks, total = [], 0
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if total > MAX_IMAGE_BYTES:
                            raise _too_big(model)
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx2.HTTPError as exc:
                raise UpstreamError(
                    "upstream_unreachable",
                    "The generated image could not be downloaded. Try again.",
                    admin_detail=f"{_where(model)}: image download failed ({type(exc).__name__})",
                ) from None
    raise UpstreamError(
        "upstream_protocol",
        "The generated image could not be downloaded (too many redirects).",
        admin_detail=f"{_where(model)}: more than {MAX_REDIRECTS} redirects",
    )


def sniff(data):
    """The image type from the first bytes (the media app checks the whole image again)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


# ---- errors -------------------------------------------------------------------------------


def _short(text, limit=300):
    text = str(text or "").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _reasons(results):
    parts = []
    for category, result in (results or {}).items():
        if isinstance(result, dict) and result.get("filtered"):
            severity = result.get("severity")
            name = category.replace("_", " ")
            parts.append(f"{name} (severity {severity})" if severity else name)
    return ", ".join(parts)


def _policy_error(model, upstream_message, results):
    from apps.azure.client import _scrubbed

    reasons = _reasons(results)
    return UpstreamError(
        "content_policy",
        "Azure's content policy refused this image prompt"
        + (f": {reasons}" if reasons else "")
        + ". Rephrase it and try again.",
        admin_detail=f"{_where(model)}: content_policy_violation {reasons} {_short(_scrubbed(str(upstream_message or ''), model))}".strip(),
        status=400,
        filter_results=results or None,
    )


def _map_error(exc, model):
    from apps.azure.client import map_error

    body = getattr(exc, "body", None)
    body = body if isinstance(body, dict) else {}
    if body.get("code") == "content_policy_violation":
        inner = body.get("inner_error") or body.get("innererror") or {}
        results = inner.get("content_filter_results") or inner.get("content_filter_result")
        return _policy_error(model, body.get("message"), results)
    return map_error(exc, model)
