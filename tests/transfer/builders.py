"""Test data: a branched conversation stored as the chat stores it (edits and regenerations are
siblings under one parent), with usage, models and an image attached."""

import datetime as dt

from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.media import images
from tests.media import imagefiles


def _message(conversation, parent, role, content, at, **fields):
    message = Message.objects.create(conversation=conversation, parent=parent, role=role, content=content, **fields)
    Message.objects.filter(pk=message.pk).update(created=at)
    message.created = at
    return message


def branched_conversation(owner, *, with_image=False):
    """Q1 → A1 → (Q2 → A2a | A2b regenerated) and an edited Q2' → A2' sibling branch; the current
    leaf is A2b. Returns (conversation, {name: message})."""
    conversation = Conversation.objects.create(
        owner=owner, model_key="gpt-4o", title="Harbour <b>plans</b>", title_source="user",
        system_prompt="Answer briefly.", temperature=0.4, max_output_tokens=800, image_detail="low",
    )
    t = timezone.now() - dt.timedelta(hours=1)
    step = dt.timedelta(seconds=5)
    m = {}
    m["q1"] = _message(conversation, None, "user", "Where is the harbour?", t)
    m["a1"] = _message(conversation, m["q1"], "assistant", "At the **north** end.\n\n```py\nprint(1)\n```", t + step,
                       model_key="gpt-4o", group="north", deployment="gpt4o-dep", finish_reason="stop",
                       prompt_tokens=12, completion_tokens=9)
    m["q2"] = _message(conversation, m["a1"], "user", "How deep is it?", t + 2 * step)
    m["a2a"] = _message(conversation, m["q2"], "assistant", "Eight metres.", t + 3 * step, model_key="gpt-4o",
                        finish_reason="stop", prompt_tokens=30, completion_tokens=4)
    m["a2b"] = _message(conversation, m["q2"], "assistant", "About 8 m at low tide.", t + 4 * step,
                        model_key="o4-mini", finish_reason="stop", prompt_tokens=30, completion_tokens=40,
                        reasoning_tokens=30, reasoning="Recall the chart.")
    m["q2e"] = _message(conversation, m["a1"], "user", "How wide is it?", t + 5 * step)
    m["a2e"] = _message(conversation, m["q2e"], "assistant", "", t + 6 * step, status="error",
                        error_code="rate_limited", error_message="Too many requests.", model_key="gpt-4o",
                        notice="Older messages were left out.")
    conversation.current_leaf = m["a2b"]
    conversation.save()
    if with_image:
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = images.create_upload(
            owner=owner, file=SimpleUploadedFile("chart.png", imagefiles.png(120, 80), content_type="image/png")
        )
        upload.conversation, upload.message = conversation, m["q1"]
        upload.save()
        m["image"] = upload
    return conversation, m
