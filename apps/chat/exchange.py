"""Services that start an answer: send, regenerate, edit. Each stores the messages first.

Every function here runs in one transaction that locks the conversation row, so two sends to one
conversation (from two tabs or two processes) cannot both start a generation, and repeats of a
``client_id`` return what the first call made instead of asking the model again.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.azure.registry import get_registry
from apps.chat.models import Conversation, Message
from apps.chat.services import create_conversation
from apps.chat.workers import WORKER_ID

# A streaming message whose process has not written for this long is taken as dead.
STALE_AFTER = timedelta(seconds=20)
TITLE_WORDS = 8


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


def _chat_model(key):
    model = get_registry().get(key) if key else None
    if model is None:
        raise ExchangeRefused(
            "unknown_model",
            f"The model {key!r} is not available. Pick one of the configured models.",
        )
    if model.type == "image":
        raise ExchangeRefused(
            "unsupported_model", f"{model.label} generates images; pick a chat model to chat."
        )
    return model


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


def _lock(conversation):
    """Lock the conversation row and refuse if an answer is still being written."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    interrupt_stale(conversation.messages.all())
    if conversation.messages.filter(status=Message.Status.STREAMING).exists():
        raise ExchangeRefused(
            "busy",
            "An answer is still being written in this conversation. Stop it or wait for it "
            "to finish before sending another message.",
        )
    return conversation


def _begin_answer(*, conversation, parent, model, client_id=None):
    answer = Message.objects.create(
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
    conversation.model_key = model.key
    conversation.save(update_fields=["current_leaf", "model_key", "updated"])
    return answer


def _existing(*, user, client_id, role):
    message = (
        Message.objects.select_related("conversation")
        .filter(conversation__owner=user, client_id=client_id, role=role)
        .first()
    )
    if message is None:
        return None
    if role == Message.Role.USER:
        answer = message.children.filter(role=Message.Role.ASSISTANT).order_by("created").first()
        return Exchange(message.conversation, message, answer, created=False) if answer else None
    return Exchange(message.conversation, message.parent, message, created=False)


def _provisional_title(text):
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    return title + ("…" if len(words) > TITLE_WORDS else "")


@transaction.atomic
def send_message(*, user, client_id, text, conversation_id=None, model_key=None, parent_id=None):
    """Store the user's message and an empty streaming answer; return the Exchange."""
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.USER)) is not None:
        return repeat
    if conversation_id is None:
        model = _chat_model(model_key)
        conversation = create_conversation(user=user, model_key=model.key)
    else:
        conversation = Conversation.objects.filter(owner=user, id=conversation_id).first()
        if conversation is None:
            raise ExchangeRefused("not_found", "That conversation does not exist.")
        model = _chat_model(model_key or conversation.model_key)
    conversation = _lock(conversation)
    if parent_id is not None:
        parent = conversation.messages.filter(id=parent_id).first()
        if parent is None:
            raise ExchangeRefused("not_found", "The message you replied to does not exist.")
    else:
        parent = conversation.current_leaf
    if not conversation.title:
        conversation.title = _provisional_title(text)
        conversation.save(update_fields=["title"])
    question = Message.objects.create(
        conversation=conversation, parent=parent, role=Message.Role.USER, content=text,
        client_id=client_id,
    )
    answer = _begin_answer(conversation=conversation, parent=question, model=model)
    return Exchange(conversation, question, answer, created=True)


@transaction.atomic
def regenerate_answer(*, user, message_id, client_id):
    """A new answer, as a sibling of the assistant message ``message_id``."""
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.ASSISTANT)) is not None:
        return repeat
    previous = _owned_message(user=user, message_id=message_id, role=Message.Role.ASSISTANT)
    conversation = _lock(previous.conversation)
    model = _chat_model(conversation.model_key)
    answer = _begin_answer(
        conversation=conversation, parent=previous.parent, model=model, client_id=client_id
    )
    return Exchange(conversation, previous.parent, answer, created=True)


@transaction.atomic
def edit_message(*, user, message_id, text, client_id):
    """A changed copy of the user message ``message_id`` (a sibling branch) and its answer."""
    if (repeat := _existing(user=user, client_id=client_id, role=Message.Role.USER)) is not None:
        return repeat
    original = _owned_message(user=user, message_id=message_id, role=Message.Role.USER)
    conversation = _lock(original.conversation)
    model = _chat_model(conversation.model_key)
    question = Message.objects.create(
        conversation=conversation, parent=original.parent, role=Message.Role.USER, content=text,
        client_id=client_id,
    )
    answer = _begin_answer(conversation=conversation, parent=question, model=model)
    return Exchange(conversation, question, answer, created=True)


def _owned_message(*, user, message_id, role):
    message = (
        Message.objects.select_related("conversation")
        .filter(id=message_id, conversation__owner=user, role=role)
        .first()
    )
    if message is None:
        raise ExchangeRefused("not_found", f"That {role} message does not exist.")
    return message
