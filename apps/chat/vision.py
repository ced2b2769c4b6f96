"""Images in chat prompts: which model answers, and the image parts a request carries.

- ``answering_model``: a message whose prompt has images goes to a model that can see them; when
  the chosen one cannot, the first vision model of the configuration answers instead, with a
  notice saying so. With no vision model at all the send is refused before anything is stored.
- Prompts are built in two steps so no image is read for a message that is left out: first every
  user message of the branch with uploads gets placeholder ``image_url`` parts (priced by detail
  like the real ones, see ``apps.azure.tokens.count_message``); then ``materialise`` turns the
  placeholders of the messages that made it into the prompt into base64 data URLs, newest first,
  at most MAX_IMAGES_PER_REQUEST (older ones beyond that are left out).
"""

from apps.chat.models import Message
from apps.media.images import adata_url_for
from apps.media.models import Attachment

PLACEHOLDER = "lapis-attachment:"
# Azure's vision models take at most 10 images per request.
MAX_IMAGES_PER_REQUEST = 10


class NoVisionModel(Exception):
    """The prompt has images and no configured model can see them."""


def answering_model(*, model, registry, has_images):
    """``(model that answers, notice)``; raises NoVisionModel when nothing can see the images."""
    if not has_images or model.type == "image" or model.vision:
        return model, ""
    substitute = registry.first_vision_model()
    if substitute is None:
        raise NoVisionModel(
            f"{model.label} can't see images and no configured model can. Remove the images, "
            "or ask an admin to configure a vision model (vision: true)."
        )
    return substitute, f"Answered by {substitute.label} because {model.label} can't see images."


def branch_ids(*, conversation, leaf_id):
    """Ids of the messages from the root down to ``leaf_id`` (sync, one query)."""
    parents = dict(conversation.messages.values_list("id", "parent_id"))
    ids, current = [], leaf_id
    while current is not None and current in parents:
        ids.append(current)
        current = parents[current]
    return ids


def branch_has_images(*, owner, message_ids):
    return Attachment.objects.filter(
        owner=owner, kind=Attachment.Kind.UPLOAD, message_id__in=list(message_ids)
    ).exists()


def branch_uploads(branch, *, owner_id):
    """The uploads of the user messages of ``branch``, oldest first (sync, one query)."""
    ids = [m.id for m in branch if m.role == Message.Role.USER]
    return list(
        Attachment.objects.filter(
            owner_id=owner_id, kind=Attachment.Kind.UPLOAD, message_id__in=ids
        ).order_by("created")
    )


def place_image_parts(branch, uploads, *, detail):
    """Give every user message of ``branch`` with ``uploads`` an ``image_parts`` list of
    placeholders (in the order of ``uploads``). Returns ``{attachment id (str): Attachment}``
    for ``materialise``. Reads nothing."""
    users = {m.id: m for m in branch if m.role == Message.Role.USER}
    found = {}
    for attachment in uploads:
        if attachment.message_id not in users:
            continue
        found[str(attachment.pk)] = attachment
        parts = users[attachment.message_id].__dict__.setdefault("image_parts", [])
        parts.append(
            {"type": "image_url", "image_url": {"url": PLACEHOLDER + str(attachment.pk), "detail": detail}}
        )
    return found


async def add_image_parts(branch, *, owner_id, detail):
    """``place_image_parts`` with the uploads read from the database. Reads rows, not files."""
    from asgiref.sync import sync_to_async

    uploads = await sync_to_async(branch_uploads)(branch, owner_id=owner_id)
    return place_image_parts(branch, uploads, detail=detail)


async def materialise(messages, attachments):
    """A copy of ``messages`` with placeholders replaced by data URLs (newest first, at most
    MAX_IMAGES_PER_REQUEST; placeholders beyond that are removed)."""
    out, sent = [], 0
    for entry in reversed(messages):
        content = entry.get("content")
        if not isinstance(content, list):
            out.append(entry)
            continue
        parts = []
        for part in content:
            url = (part.get("image_url") or {}).get("url", "") if part.get("type") == "image_url" else ""
            if not url.startswith(PLACEHOLDER):
                parts.append(part)
                continue
            attachment = attachments.get(url[len(PLACEHOLDER) :])
            if attachment is None or sent >= MAX_IMAGES_PER_REQUEST:
                continue
            detail = part["image_url"].get("detail", "auto")
            data_url = await adata_url_for(attachment, detail=detail)
            parts.append({"type": "image_url", "image_url": {"url": data_url, "detail": detail}})
            sent += 1
        out.append({**entry, "content": parts or ""})
    out.reverse()
    return out


def copy_attachments(*, source, target):
    """Give ``target`` (an edited copy of the user message ``source``) copies of its uploads.

    Each row owns its files (deleting one deletes them), so the files are copied under new
    random names rather than shared. Sync; runs inside the edit's transaction. Returns the new
    relative paths, for the caller to delete if the transaction then fails.
    """
    import secrets
    import shutil

    copied = []
    for original in Attachment.objects.filter(message=source, kind=Attachment.Kind.UPLOAD):
        copy = Attachment.objects.get(pk=original.pk)
        copy.pk = None
        copy.id = None
        copy._state.adding = True
        copy.path = f"{original.owner_id}/{secrets.token_urlsafe(18)}.{original.extension}"
        copy.message, copy.conversation = target, target.conversation
        copy.absolute().parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original.absolute(), copy.absolute())
        thumb = original.absolute(original.variant_path("thumb"))
        if thumb.exists():
            shutil.copyfile(thumb, copy.absolute(copy.variant_path("thumb")))
        copy.save()
        copied.append(copy.path)
    return copied
