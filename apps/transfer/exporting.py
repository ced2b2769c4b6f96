"""Lapis's own exports: one conversation as JSON (every branch, exactly) or Markdown (the branch
shown), and all of a user's conversations as a zip streamed one conversation at a time.

The JSON is what ``importing`` reads back: export → import gives the same tree, branches,
contents, models and usage (new ids; images are referenced, their bytes are in the zip only).
"""

import json
import re
import zipfile

from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.chat import selectors as chat_selectors
from apps.chat.models import Conversation
from apps.media.selectors import attachments_by_message

FORMAT = "lapis.conversation"
VERSION = 1


def _iso(value):
    return value.isoformat() if value else None


def _attachment(attachment):
    return {
        "id": str(attachment.pk),
        "kind": attachment.kind,
        "name": attachment.original_name,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
        "bytes": attachment.bytes,
        "sha256": attachment.sha256,
        "file": f"images/{attachment.pk}.{attachment.extension}",
        "prompt": attachment.prompt,
        "revised_prompt": attachment.revised_prompt,
        "model_key": attachment.model_key,
    }


def _message(message, attachments):
    return {
        "id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "status": message.status,
        "model_key": message.model_key,
        "group": message.group,
        "deployment": message.deployment,
        "finish_reason": message.finish_reason,
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "reasoning_tokens": message.reasoning_tokens,
        },
        # The admin-only error detail stays out: an export is the user's.
        "error": {"code": message.error_code, "message": message.error_message},
        "notice": message.notice,
        "created": _iso(message.created),
        "attachments": [_attachment(a) for a in attachments],
    }


def conversation_document(*, conversation, with_attachments=True):
    """The conversation as Lapis's JSON export (a dict); ``conversation`` is the owner's.

    Returns (document, attachments) where attachments are the stored images it references.
    """
    messages = chat_selectors.conversation_messages(conversation=conversation)
    images = attachments_by_message(owner=conversation.owner, message_ids=[m.id for m in messages])
    document = {
        "format": FORMAT,
        "version": VERSION,
        "exported": _iso(timezone.now()),
        "conversation": {
            "id": str(conversation.id),
            "title": conversation.title,
            "title_source": conversation.title_source,
            "model_key": conversation.model_key,
            "system_prompt": conversation.system_prompt,
            "temperature": conversation.temperature,
            "max_output_tokens": conversation.max_output_tokens,
            "image_detail": conversation.image_detail,
            "archived": conversation.archived,
            "current_leaf_id": str(conversation.current_leaf_id) if conversation.current_leaf_id else None,
            "created": _iso(conversation.created),
            "updated": _iso(conversation.updated),
        },
        "messages": [_message(m, images.get(m.id, ())) for m in messages],
    }
    return document, [a for found in images.values() for a in found]


def conversation_json(*, conversation):
    document, _ = conversation_document(conversation=conversation)
    return json.dumps(document, ensure_ascii=False, indent=1)


def _fence(text):
    """A code fence longer than any backtick run in ``text`` (so content cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def conversation_markdown(*, conversation):
    """The branch the owner last looked at, as readable Markdown.

    The user's text is quoted in a fence (it is text, not markdown); answers are kept as the
    markdown they are. Images are named, not embedded.
    """
    messages = chat_selectors.conversation_messages(conversation=conversation)
    by_id = {m.id: m for m in messages}
    branch = chat_selectors.branch_to(conversation.current_leaf_id, by_id) if by_id else []
    images = attachments_by_message(owner=conversation.owner, message_ids=[m.id for m in branch])
    lines = [f"# {conversation.display_title}", ""]
    lines.append(f"*Model: {conversation.model_key or 'none'} · {conversation.created:%Y-%m-%d %H:%M} UTC*")
    if conversation.system_prompt:
        fence = _fence(conversation.system_prompt)
        lines += ["", "**System prompt**", "", fence, conversation.system_prompt, fence]
    for message in branch:
        who = "You" if message.role == "user" else f"Assistant ({message.model_key or 'model'})"
        lines += ["", f"## {who}", ""]
        if message.role == "user":
            fence = _fence(message.content)
            lines += [fence + "text", message.content, fence]
        else:
            lines.append(message.content)
        for attachment in images.get(message.id, ()):
            lines += ["", f"*Image: {attachment.original_name or attachment.pk} ({attachment.width}×{attachment.height})*"]
    return "\n".join(lines) + "\n"


def safe_filename(title, fallback="conversation"):
    stem = re.sub(r"[^\w .()-]+", "_", title or "").strip(" ._")[:80]
    return stem or fallback


class _Sink:
    """A write-only file for zipfile: it keeps what was written until ``take()``; having no
    ``tell``, it makes zipfile stream (sizes in data descriptors, no seeking back)."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data, self.parts = b"".join(self.parts), []
        return data


def _zip_one(archive, conversation):
    document, attachments = conversation_document(conversation=conversation)
    name = f"conversations/{conversation.created:%Y-%m-%d}-{safe_filename(conversation.display_title)}-{conversation.pk}"
    archive.writestr(name + ".json", json.dumps(document, ensure_ascii=False, indent=1))
    archive.writestr(name + ".md", conversation_markdown(conversation=conversation))
    for attachment in attachments:
        path = attachment.absolute()
        if path.exists():  # a missing file leaves the reference in the JSON, nothing else
            archive.write(path, f"images/{attachment.pk}.{attachment.extension}")


async def zip_stream(*, user):
    """The bytes of a zip of every conversation of ``user`` (archived too), produced one
    conversation at a time: memory holds one conversation and its images, never the archive."""
    ids = await sync_to_async(list)(
        Conversation.objects.filter(owner=user).order_by("created").values_list("pk", flat=True)
    )
    sink = _Sink()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED)
    for pk in ids:
        conversation = await Conversation.objects.filter(owner=user, pk=pk).select_related("owner").afirst()
        if conversation is None:  # deleted meanwhile
            continue
        await sync_to_async(_zip_one)(archive, conversation)
        yield sink.take()
    archive.close()
    yield sink.take()
