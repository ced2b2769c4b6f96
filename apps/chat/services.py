"""Writes to conversations that are not part of generating an answer (see ``exchange``)."""

import uuid

from django.db import transaction

from apps.chat.models import Conversation

TITLE_MAX_CHARS = 200
SETTINGS_FIELDS = ("system_prompt", "temperature", "max_output_tokens", "image_detail", "model_key")


class InvalidSettings(ValueError):
    """A setting the user sent that Lapis cannot accept; the message says which and why."""


def create_conversation(*, user, model_key, temporary=False, **settings):
    conversation = Conversation(owner=user, model_key=model_key, temporary=temporary)
    _apply_settings(conversation, settings)
    conversation.save()
    return conversation


def rename_conversation(*, conversation, title):
    """A user's title; the title model never overwrites it afterwards."""
    title = " ".join((title or "").split())[:TITLE_MAX_CHARS]
    if not title:
        raise InvalidSettings("A title cannot be empty.")
    conversation.title = title
    conversation.title_source = Conversation.TitleSource.USER
    conversation.save(update_fields=["title", "title_source", "updated"])
    return conversation


def archive_conversation(*, conversation, archived=True):
    conversation.archived = archived
    conversation.save(update_fields=["archived", "updated"])
    return conversation


@transaction.atomic
def delete_conversation(*, conversation):
    """Delete the conversation, its messages and (through signals of apps.media) its files."""
    conversation.delete()


def update_settings(*, conversation, **settings):
    """Change per-conversation settings; raises InvalidSettings naming the bad field."""
    _apply_settings(conversation, settings)
    conversation.save()
    return conversation


def _apply_settings(conversation, settings):
    unknown = set(settings) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidSettings(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    if "temperature" in settings and settings["temperature"] not in (None, ""):
        try:
            temperature = float(settings["temperature"])
        except (TypeError, ValueError):
            raise InvalidSettings("Temperature must be a number between 0 and 2.") from None
        if not 0 <= temperature <= 2:
            raise InvalidSettings("Temperature must be between 0 and 2.")
        settings["temperature"] = temperature
    elif "temperature" in settings:
        settings["temperature"] = None
    if "max_output_tokens" in settings and settings["max_output_tokens"] not in (None, ""):
        try:
            max_tokens = int(settings["max_output_tokens"])
        except (TypeError, ValueError):
            raise InvalidSettings("Max output tokens must be a whole number.") from None
        if not 1 <= max_tokens <= 200_000:
            raise InvalidSettings("Max output tokens must be between 1 and 200000.")
        settings["max_output_tokens"] = max_tokens
    elif "max_output_tokens" in settings:
        settings["max_output_tokens"] = None
    if "image_detail" in settings and settings["image_detail"] not in Conversation.ImageDetail.values:
        raise InvalidSettings("Image detail must be auto, low or high.")
    if "system_prompt" in settings:
        settings["system_prompt"] = (settings["system_prompt"] or "")[:20_000]
    if "model_key" in settings:
        from apps.azure.registry import get_registry
        from apps.chat.imagegen import find_model

        # Image models too: with one picked, a message is the prompt for a picture.
        model = find_model(settings["model_key"], get_registry())
        if model is None:
            raise InvalidSettings(
                f"model_key: {settings['model_key']!r} is not a configured model."
            )
        _check_model_access(user=conversation.owner, model=model)
    for name, value in settings.items():
        setattr(conversation, name, value)


def _check_model_access(*, user, model):
    from apps.azure import access

    try:
        access.check(user=user, spec=model)
    except access.ModelNotAllowed as exc:
        raise InvalidSettings(f"model_key: {exc}") from None


def select_branch(*, conversation, message_id):
    """Show the branch through ``message_id``: its newest descendant becomes the current leaf.

    Raises InvalidSettings when the message is not in this conversation.
    """
    message = conversation.messages.filter(id=_uuid_or_none(message_id)).first()
    if message is None:
        raise InvalidSettings("That message is not part of this conversation.")
    while (child := message.children.order_by("-created").first()) is not None:
        message = child
    conversation.current_leaf = message
    # Choosing a branch to look at is not activity: keep the sidebar order.
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message)
    return conversation


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
