"""Services that start an answer: send, regenerate, edit. Each stores the messages first.

Every function here runs in one transaction that first locks the owner's user row, so one user's
sends, edits and regenerations run one at a time across processes: two sends to one conversation
(from two tabs or two processes) cannot both start a generation, and a repeat of a ``client_id``,
even one that arrives while the first is being stored (a new conversation has no row to lock
yet), returns what the first call made instead of asking the model again.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.azure.registry import ROUTES, get_registry
from apps.chat.models import Conversation, Message
from apps.chat.selectors import owned_messages
from apps.chat.services import create_conversation
from apps.chat.workers import WORKER_ID
from apps.media.images import ImageRejected, claim_attachments

# A streaming message whose process has not written for this long is taken as dead.
STALE_AFTER = timedelta(seconds=20)
TITLE_WORDS = 8
TITLE_CHARS = 80


class ExchangeRefused(Exception):
    """The request cannot start an answer; ``code`` and ``message`` go to the client."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Exchange:
    conversation: Conversation
    user_message: Message | None
    assistant_message: Message
    created: bool  # False when the client_id had been seen: nothing new was started
    image_options: dict | None = None  # size/quality/style for an image model (send only)
    # The user message's images when this call knows them without a read (a send's claimed
    # uploads), else None; and whether the conversation was made by this call (its branch is
    # the question alone). apps.chat.preparation uses both to skip reads.
    images: list | None = None
    new_conversation: bool = False
    prepared: object = None  # apps.chat.preparation.Prepared, once read for the generation


def _chat_model(key, *, user):
    """The configured chat or image model ``key`` (image models answer with a picture), if
    ``user`` may use it."""
    from apps.chat.imagegen import find_model

    model = find_model(key, get_registry())
    if model is None or model.type in ROUTES:  # embeddings and audio: the API's (/v1/)
        raise ExchangeRefused(
            "unknown_model",
            f"The model {key!r} is not available. Pick one of the configured models.",
        )
    _check_access(user=user, model=model)
    return model


def _check_access(*, user, model):
    """The model access rule (apps.azure.access), before anything is stored."""
    from apps.azure import access

    try:
        access.check(user=user, spec=model)
    except access.ModelNotAllowed as exc:
        raise ExchangeRefused("model_not_allowed", str(exc)) from None


def _claim(*, user, ids, conversation, question, model):
    """Attach the uploads ``ids`` to ``question``; refuses (rolling back the send) bad ids."""
    if not ids:
        return []
    if model.type == "image":
        raise ExchangeRefused(
            "unsupported_attachment",
            f"{model.label} makes pictures from text and can't take attached images. Remove "
            "them or pick a chat model.",
        )
    try:
        return claim_attachments(owner=user, ids=ids, conversation=conversation, message=question)
    except ImageRejected as exc:
        raise ExchangeRefused("bad_attachment", exc.message[:1].upper() + exc.message[1:] + ".") from None


def _answering(*, user, conversation, leaf_id, model, has_images=None):
    """(model, notice): a model that can see the branch's images (see apps.chat.vision).

    ``has_images``: whether the branch has images, when the caller knows (a new conversation's
    branch is its question alone); None reads it."""
    from apps.chat import vision

    if model.type == "image" or model.vision:
        return model, ""
    if has_images is None:
        ids = vision.branch_ids(conversation=conversation, leaf_id=leaf_id)
        has_images = vision.branch_has_images(owner=user, message_ids=ids)
    try:
        # The stand-in is only ever a model this user may use.
        return vision.answering_model(model=model, registry=get_registry().for_user(user), has_images=has_images)
    except vision.NoVisionModel as exc:
        raise ExchangeRefused("no_vision_model", str(exc)) from None


def _image_options(model, options):
    from apps.chat.imagegen import BadImageOptions, clean_options

    if model.type != "image" or not options:
        return {}
    try:
        return clean_options(model, options)
    except BadImageOptions as exc:
        raise ExchangeRefused("bad_image_options", str(exc)) from None


def mark_interrupted(queryset):
    """Mark the messages as ``interrupted``, keeping their text; return how many."""
    return queryset.update(
        status=Message.Status.INTERRUPTED,
        error_code="interrupted",
        error_message="The server stopped while this answer was being written; the text "
        "so far is kept.",
        updated=timezone.now(),
    )


def interrupt_stale(queryset):
    """Mark streaming messages whose process stopped writing as ``interrupted``."""
    return mark_interrupted(
        queryset.filter(status=Message.Status.STREAMING, updated__lt=timezone.now() - STALE_AFTER)
    )


def _lock_owner(user):
    """Lock ``user``'s row until the transaction ends (see the module docstring); refuse while
    the process shuts down (the browser sends again after reconnecting to another process).

    On SQLite the IMMEDIATE transaction (project.settings) already serialises writers."""
    from project.lifecycle import draining

    if draining():
        raise ExchangeRefused(
            "restarting", "This server is restarting. Send your message again in a moment."
        )
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))


def _refuse_if_over_budget(user):
    """The owner's spending budgets (apps.governance.quotas), before anything is stored."""
    from apps.governance.quotas import OverBudget, check_budget

    try:
        check_budget(user=user)
    except OverBudget as exc:
        raise ExchangeRefused(exc.code, exc.message) from None


def _refuse_if_busy(conversation):
    """Refuse if an answer is still being written in ``conversation`` (the owner is locked)."""
    interrupt_stale(conversation.messages.all())
    if conversation.messages.filter(status=Message.Status.STREAMING).exists():
        raise ExchangeRefused(
            "busy",
            "An answer is still being written in this conversation. Stop it or wait for it "
            "to finish before sending another message.",
        )


def _begin_answer(*, conversation, parent, model, client_id=None, has_images=None):
    chosen = model
    model, notice = _answering(
        user=conversation.owner, conversation=conversation, leaf_id=parent.id if parent else None,
        model=model, has_images=has_images,
    )
    answer = Message.objects.create(
        notice=notice,
        conversation=conversation,
        parent=parent,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_key=model.key,
        group=model.group,
        deployment=model.deployment,
        client_id=client_id,
        worker=WORKER_ID,
    )
    conversation.current_leaf = answer
    conversation.model_key = chosen.key  # the picker keeps the user's choice, not the stand-in
    conversation.save(update_fields=["current_leaf", "model_key", "title", "updated"])
    return answer


def _existing(*, user, client_id, role):
    # A repeat is rare: the usual miss costs one narrow query (~0.26 ms on the database thread,
    # where the joined, ordered one with both models' columns took ~0.7-0.9 ms of a send's ~2.3).
    seen = Message.objects.filter(conversation__owner=user, client_id=client_id, role=role)
    if not seen.values_list("pk").exists():
        return None
    message = owned_messages(user=user).filter(client_id=client_id, role=role).first()
    if message is None:
        return None
    if role == Message.Role.USER:
        answer = message.children.filter(role=Message.Role.ASSISTANT).order_by("created").first()
        return Exchange(message.conversation, message, answer, created=False) if answer else None
    return Exchange(message.conversation, message.parent, message, created=False)


def _provisional_title(text):
    """The first words of the first message, until the title model (if any) names it."""
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip()
    return title + ("…" if len(words) > TITLE_WORDS or len(title) < len(" ".join(words)) else "")


@transaction.atomic
def send_message(
    *, user, client_id, text, conversation_id=None, model_key=None, parent_id=None,
    attachments=(), image_options=None, temporary=False,
):
    """Store the user's message and an empty streaming answer; return the Exchange.

    ``temporary`` (a new conversation only): a temporary chat, see apps.chat.temporary.

    ``attachments``: ids of the user's own unattached uploads, claimed for the message (a bad id
    refuses the whole send: nothing is stored). ``image_options`` only for image models; the
    Exchange carries the cleaned ones for the generation.
    """
    _lock_owner(user)
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.USER)) is not None:
        return repeat
    _refuse_if_over_budget(user)
    new = conversation_id is None
    if new:
        model = _chat_model(model_key, user=user)
        conversation = create_conversation(user=user, model_key=model.key, temporary=temporary)
    else:
        conversation = Conversation.objects.filter(owner=user, id=conversation_id).first()
        if conversation is None:
            raise ExchangeRefused("not_found", "That conversation does not exist.")
        model = _chat_model(model_key or conversation.model_key, user=user)
        _refuse_if_busy(conversation)
    if parent_id is not None:
        parent = conversation.messages.filter(id=parent_id).first()
        if parent is None:
            raise ExchangeRefused("not_found", "The message you replied to does not exist.")
    else:
        parent = conversation.current_leaf
    if not conversation.title:
        conversation.title = _provisional_title(text)  # saved with the answer below
    question = Message.objects.create(
        conversation=conversation, parent=parent, role=Message.Role.USER, content=text,
        client_id=client_id,
    )
    options = _image_options(model, image_options)
    images = _claim(user=user, ids=attachments, conversation=conversation, question=question, model=model)
    answer = _begin_answer(
        conversation=conversation, parent=question, model=model,
        has_images=bool(images) if new else None,
    )
    return Exchange(
        conversation, question, answer, created=True, image_options=options, images=images,
        new_conversation=new,
    )


@transaction.atomic
def regenerate_answer(*, user, message_id, client_id):
    """A new answer, as a sibling of the assistant message ``message_id``."""
    _lock_owner(user)
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.ASSISTANT)) is not None:
        return repeat
    _refuse_if_over_budget(user)
    previous = _owned_message(user=user, message_id=message_id, role=Message.Role.ASSISTANT)
    conversation = previous.conversation
    _refuse_if_busy(conversation)
    model = _chat_model(conversation.model_key, user=user)
    answer = _begin_answer(
        conversation=conversation, parent=previous.parent, model=model, client_id=client_id
    )
    return Exchange(conversation, previous.parent, answer, created=True)


@transaction.atomic
def edit_message(*, user, message_id, text, client_id, attachments=()):
    """A changed copy of the user message ``message_id`` (a sibling branch) and its answer.

    The copy keeps the original's images (see apps.chat.vision.copy_attachments) and adds the
    uploads ``attachments``."""
    _lock_owner(user)
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.USER)) is not None:
        return repeat
    _refuse_if_over_budget(user)
    original = _owned_message(user=user, message_id=message_id, role=Message.Role.USER)
    conversation = original.conversation
    _refuse_if_busy(conversation)
    model = _chat_model(conversation.model_key, user=user)
    question = Message.objects.create(
        conversation=conversation, parent=original.parent, role=Message.Role.USER, content=text,
        client_id=client_id,
    )
    from apps.chat.vision import copy_attachments
    from apps.media.images import delete_files

    _claim(user=user, ids=attachments, conversation=conversation, question=question, model=model)
    copied = copy_attachments(source=original, target=question)
    try:
        answer = _begin_answer(conversation=conversation, parent=question, model=model)
    except ExchangeRefused:
        for path in copied:  # the rows roll back; their files must go too
            delete_files(path)
        raise
    return Exchange(conversation, question, answer, created=True)


def _owned_message(*, user, message_id, role):
    message = owned_messages(user=user).filter(id=message_id, role=role).first()
    if message is None:
        raise ExchangeRefused("not_found", f"That {role} message does not exist.")
    return message
