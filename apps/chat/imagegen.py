"""Image generation in the chat, two ways.

1. An image model picked in the picker: the user's message is the prompt; the answer is the
   picture (stored on the assistant message), with size/quality/style from the ``send`` frame.
2. With ``plugins: true``, chat models that can call functions get a ``generate_image`` tool.
   When the model calls it, Lapis generates with the first available image model, stores the
   picture on the assistant message and answers the call with a short result; the generation
   then streams the model's continuation into the same message (one tool round per answer).

Image models are the config's, or the legacy ``DALLE3_*``/``DALLE2_*`` variables' when the config
has none (``apps.azure.images.available_image_models``); ``find_model`` looks in both.
"""

import json
import logging

from asgiref.sync import sync_to_async

from apps.azure.errors import UpstreamError
from apps.azure.images import (
    available_image_models,
    generate_image,
    image_options,
    image_system_prompt,
)
from apps.media.images import ImageRejected, store_generated_image
from apps.media.views import describe

logger = logging.getLogger("lapis.chat")

TOOL_NAME = "generate_image"
OPTION_NAMES = ("size", "quality", "style")


class BadImageOptions(ValueError):
    """Size, quality or style the picked image model does not offer; the message says which."""


def find_model(key, registry):
    """The chat or image model ``key`` of the registry, or a legacy image model; else None."""
    if not key:
        return None
    return registry.get(key) or next(
        (m for m in available_image_models(registry) if m.key == key), None
    )


def picker_models(registry):
    """The image models for the picker, each with what it offers: [(ModelSpec, options)]."""
    return [(model, image_options(model)) for model in available_image_models(registry)]


def clean_options(model, options):
    """``{size, quality, style}`` limited to what ``model`` offers; raises BadImageOptions."""
    offered = image_options(model)
    cleaned = {}
    for name in OPTION_NAMES:
        value = (options or {}).get(name)
        if not value:
            continue
        allowed = offered[f"{name}s"] if name != "quality" else offered["qualities"]
        if value not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise BadImageOptions(
                f"image.{name}: {offered['label']} offers {choices}, not {value!r}."
            )
        cleaned[name] = value
    return cleaned


# -- way 1: the picked model is an image model ------------------------------------------------


async def answer_with_image(generation, *, message, model, prompt, options):
    """Generate the picture for ``message`` (an assistant message); return (status, error).

    Raises UpstreamError, which the generation maps like a chat model's."""
    from apps.chat.models import Message

    try:
        attachment = await _generate_and_store(
            message=message, model=model, prompt=prompt, options=options
        )
    except ImageRejected as exc:
        return Message.Status.ERROR, {"code": "bad_image", "message": f"Lapis refused {exc.message}."}
    await publish_attachment(generation, message, attachment)
    return Message.Status.COMPLETE, None


async def _generate_and_store(*, message, model, prompt, options, style_default=None):
    options = dict(options or {})
    if style_default and "style" not in options and image_options(model)["styles"]:
        options["style"] = style_default
    generated = await generate_image(model, prompt=prompt, **options)
    return await sync_to_async(store_generated_image)(
        owner=message.conversation.owner,
        conversation=message.conversation,
        message=message,
        generated=generated,
        prompt=prompt,
        model_key=model.key,
        **options,
    )


async def publish_attachment(generation, message, attachment):
    from apps.chat import protocol

    data = await sync_to_async(describe)(attachment)
    await generation._publish(protocol.attachments(message_id=message.id, attachments=[data]))


# -- way 2: the generate_image tool -----------------------------------------------------------


def tool_image_model(model, registry):
    """The image model behind the tool for chat ``model``, or None when it gets no tool."""
    if not registry.plugins or model.type != "chat" or model.force_prompt or model.serverless:
        return None
    available = available_image_models(registry)
    return available[0] if available else None


def tools_for(image_model):
    """The ``tools`` list offering ``generate_image`` backed by ``image_model``."""
    offered = image_options(image_model)
    description = (
        f"Create a picture with {offered['label']} and show it to the user. Use it when the user "
        "asks for an image, drawing, photo or illustration. Write a detailed prompt."
    )
    if instructions := image_system_prompt(image_model):
        description += f" Instructions for the prompt: {instructions}"
    properties = {"prompt": {"type": "string", "description": "What the picture shows, in detail."}}
    if offered["sizes"]:
        properties["size"] = {"type": "string", "enum": offered["sizes"]}
    if offered["styles"]:
        properties["style"] = {"type": "string", "enum": offered["styles"]}
    return [
        {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "description": description,
                "parameters": {"type": "object", "properties": properties, "required": ["prompt"]},
            },
        }
    ]


async def run_tool_calls(generation, *, message, calls, image_model, text_before):
    """Answer the model's tool calls; return the messages to append for the follow-up request.

    Never raises for a failed picture: the model is told it failed (and why) and carries on.
    """
    follow_up = [
        {
            "role": "assistant",
            "content": text_before or None,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ],
        }
    ]
    for call in calls:
        result = await _one_call(generation, message=message, call=call, image_model=image_model)
        follow_up.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return follow_up


async def _one_call(generation, *, message, call, image_model):
    if call.name != TOOL_NAME:
        return f"There is no tool called {call.name!r}."
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError:
        return "The arguments were not valid JSON; no image was made."
    prompt = args.get("prompt") if isinstance(args, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        return "The prompt was empty; no image was made."
    options = {k: args[k] for k in ("size", "style") if isinstance(args.get(k), str)}
    try:
        options = clean_options(image_model, options)
        attachment = await _generate_and_store(
            message=message, model=image_model, prompt=prompt, options=options,
            style_default="vivid",
        )
    except (UpstreamError, ImageRejected, BadImageOptions) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        logger.info("generate_image tool for message %s failed: %s", message.id, reason)
        return f"Image generation failed: {reason} Tell the user; do not retry."
    await publish_attachment(generation, message, attachment)
    revised = attachment.revised_prompt or prompt
    return f"Image generated and shown to the user. Revised prompt: {revised}"
