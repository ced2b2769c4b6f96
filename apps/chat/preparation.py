"""What a generation reads before its upstream request, read in one go on one thread.

Every ``database_sync_to_async`` call waits its turn on Channels' single database thread, behind
every other socket's calls; with many answers starting at once, each hop before the upstream
request costs an answer its place in that queue again. So the reads an answer needs (the
owner's view of the models, the branch, its images, its summary checkpoint) happen in the same
thread call that stored the exchange, right after its transaction commits, and a brand-new
conversation skips the ones whose answer is known (its branch is the question alone).

``prepared_exchange`` runs a service of apps.chat.exchange and prepares its answer;
``load`` prepares an answer from its id alone (a generation started without one).
"""

import dataclasses
from dataclasses import dataclass

from apps.azure.registry import get_registry
from apps.chat import vision
from apps.chat.models import Message
from apps.chat.selectors import branch_to
from apps.chat.serializers import message_attachments
from apps.chat.summaries import summary_for_branch_sync


@dataclass(frozen=True)
class Prepared:
    """The answer ``message`` (its ``conversation`` and that one's ``owner`` loaded) and what
    its prompt is built from."""

    message: Message
    registry: object  # the active registry as the owner may use it (apps.azure.access.UserModels)
    branch: list  # root → the question; user messages with uploads carry ``image_parts``
    images: dict  # attachment id → Attachment, for apps.chat.vision.materialise
    summary: object  # the deepest Summary checkpoint on the branch, or None


def prepare(*, message, owner, question=None, question_images=None, new_conversation=False):
    """The Prepared of the answer ``message`` of ``owner`` (sync; the caller checked the owner).

    ``new_conversation`` with the ``question`` and its ``question_images`` (oldest first): the
    branch is known without a read, and a conversation made this instant has no summary.
    """
    conversation = message.conversation
    conversation.owner = owner  # the same row: spares the generation a read of it
    registry = get_registry().for_user(owner)
    if new_conversation and question is not None and question_images is not None:
        branch, uploads, summary = [question], question_images, None
    else:
        messages = {m.id: m for m in Message.objects.filter(conversation_id=conversation.id)}
        branch = branch_to(message.parent_id, messages)
        uploads = vision.branch_uploads(branch, owner_id=owner.pk)
        summary = summary_for_branch_sync(conversation=conversation, branch=branch) if branch else None
    images = vision.place_image_parts(branch, uploads, detail=conversation.image_detail)
    return Prepared(message=message, registry=registry, branch=branch, images=images, summary=summary)


def load(message_id):
    """The Prepared of the answer ``message_id`` read from the database (sync)."""
    message = Message.objects.select_related("conversation__owner").get(id=message_id)
    return prepare(message=message, owner=message.conversation.owner)


def prepared_exchange(service, *, user, question_images=True, **kwargs):
    """``service(user=user, **kwargs)`` (send, regenerate or edit: its own transaction), then,
    once it committed, the Prepared of the new answer (sync).

    Returns the Exchange with ``prepared`` (None for a repeated client_id: nothing starts) and,
    with ``question_images``, ``images``: the question's stored images (for its frame)."""
    exchange = service(user=user, **kwargs)
    question = exchange.user_message
    images = exchange.images
    if images is not None:
        images = sorted(images, key=_created)  # as message_attachments orders them
    elif question is not None and question_images:
        images = message_attachments(question)
    prepared = None
    if exchange.created:
        prepared = prepare(
            message=exchange.assistant_message, owner=user, question=question,
            question_images=images, new_conversation=exchange.new_conversation,
        )
    return dataclasses.replace(exchange, images=images, prepared=prepared)


def _created(attachment):
    return attachment.created
