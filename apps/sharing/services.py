"""Writes for share links: create a snapshot, revoke it, continue it as the viewer's own copy."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from apps.chat import selectors as chat_selectors
from apps.chat.models import Conversation, Message
from apps.media.models import Attachment
from apps.media.selectors import attachments_by_message
from apps.sharing import files
from apps.sharing.models import Share, SharedImage, SharedMessage

# Names an owner may list for one share (users and groups together).
MAX_AUDIENCE = 200


class ShareRefused(ValueError):
    """The share cannot be made as asked; the message says why."""


def _audience(*, usernames, group_names):
    usernames = sorted({name.strip() for name in usernames if name.strip()})
    group_names = sorted({name.strip() for name in group_names if name.strip()})
    if len(usernames) + len(group_names) > MAX_AUDIENCE:
        raise ShareRefused(f"A share may name at most {MAX_AUDIENCE} users and groups.")
    users = list(get_user_model().objects.filter(username__in=usernames, is_active=True))
    missing = sorted(set(usernames) - {u.username for u in users})
    if missing:
        raise ShareRefused(f"No such user: {', '.join(missing)}.")
    groups = list(Group.objects.filter(name__in=group_names))
    missing = sorted(set(group_names) - {g.name for g in groups})
    if missing:
        raise ShareRefused(f"No such group: {', '.join(missing)}.")
    return users, groups


def create_share(*, owner, conversation, message_id=None, usernames=(), group_names=()):
    """Snapshot the branch from the root down to ``message_id`` (default: the current leaf).

    ``conversation`` must be the owner's (the caller looked it up with its owner). Raises
    ShareRefused for a message outside the conversation, an answer still being written, or an
    unknown user or group name.
    """
    users, groups = _audience(usernames=usernames, group_names=group_names)
    messages = {m.id: m for m in chat_selectors.conversation_messages(conversation=conversation)}
    leaf_id = message_id or conversation.current_leaf_id
    leaf = next((m for m in messages.values() if str(m.id) == str(leaf_id)), None)
    if leaf is None:
        raise ShareRefused("That message is not part of this conversation.")
    branch = chat_selectors.branch_to(leaf.id, messages)
    if any(m.status == Message.Status.STREAMING for m in branch):
        raise ShareRefused("An answer in this branch is still being written; share it when it is done.")
    images = attachments_by_message(owner=owner, message_ids=[m.id for m in branch])
    written = []
    try:
        with transaction.atomic():
            share = Share.objects.create(
                owner=owner, conversation=conversation, title=conversation.display_title,
                model_key=conversation.model_key,
            )
            share.users.set(users)
            share.groups.set(groups)
            for position, message in enumerate(branch):
                shared = SharedMessage.objects.create(
                    share=share, position=position, role=message.role, content=message.content,
                    reasoning=message.reasoning, model_key=message.model_key, created=message.created,
                )
                for attachment in images.get(message.id, ()):
                    written += _copy_image(share, shared, attachment)
    except BaseException:
        files.remove(written)
        raise
    return share


def _copy_image(share, shared_message, attachment):
    relative = files.new_relative(f"shares/{share.pk}", attachment.extension)
    written = files.copy_image_files(attachment.path, relative)
    SharedImage.objects.create(
        share=share, message=shared_message, path=relative, original_name=attachment.original_name,
        kind=attachment.kind, content_type=attachment.content_type, width=attachment.width,
        height=attachment.height, bytes=attachment.bytes, sha256=attachment.sha256,
        revised_prompt=attachment.revised_prompt,
    )
    return written


@transaction.atomic
def revoke_share(*, share):
    """The link stops working at once, and the copies (text and images) are deleted."""
    if share.revoked is None:
        share.revoked = timezone.now()
        share.save(update_fields=["revoked"])
    share.messages.all().delete()  # their images and files go with them


def continue_share(*, share, user, model_key):
    """A new conversation of ``user``'s own holding the snapshot's messages and image copies.

    ``model_key``: the model it will continue with (the caller picks one ``user`` may use).
    Returns the conversation; its current leaf is the snapshot's last message.
    """
    shared = list(share.messages.prefetch_related("images"))
    written = []
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                owner=user, model_key=model_key, title=share.title,
                title_source=Conversation.TitleSource.USER,
            )
            parent = None
            for item in shared:
                message = Message.objects.create(
                    conversation=conversation, parent=parent, role=item.role, content=item.content,
                    reasoning=item.reasoning, model_key=item.model_key,
                    status=Message.Status.COMPLETE,
                )
                for image in item.images.all():
                    written += _copy_to_attachment(image, user, conversation, message)
                parent = message
            conversation.current_leaf = parent
            conversation.save(update_fields=["current_leaf"])
    except BaseException:
        files.remove(written)
        raise
    return conversation


def _copy_to_attachment(image, user, conversation, message):
    relative = files.new_relative(str(user.pk), image.extension)
    written = files.copy_image_files(image.path, relative)
    Attachment.objects.create(
        owner=user, conversation=conversation, message=message, kind=image.kind, path=relative,
        original_name=image.original_name, content_type=image.content_type, width=image.width,
        height=image.height, bytes=image.bytes, sha256=image.sha256,
        revised_prompt=image.revised_prompt,
    )
    return written
