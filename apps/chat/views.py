"""The chat page and the JSON endpoints behind it; every object is looked up with its owner.

Another user's conversation is a 404 (a JSON one from the API), exactly like one that does not
exist. Writes are POST and go through Django's CSRF check; the page's JavaScript sends the token
in X-CSRFToken.
"""

import json
import time

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import OperationalError, transaction
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from apps.azure.registry import get_registry
from apps.chat import protocol, selectors, services
from apps.chat.budget import context_usage
from apps.chat.generation import stop_answer
from apps.chat.imagegen import picker_models
from apps.chat.models import Conversation, Message
from apps.chat.organise import folder_for
from apps.chat.serializers import conversation_to_dict, message_to_dict
from apps.media.selectors import attachments_by_message
from project.limits import MAX_PAGE, first_unstorable

MAX_BODY_BYTES = 64 * 1024


class BadRequest(Exception):
    """The request body is not what the endpoint takes; the message says what and where."""


def _json_body(request):
    if len(request.body) > MAX_BODY_BYTES:
        raise BadRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    if found := first_unstorable(data):
        raise BadRequest(f"{found[0]} {found[1]}.")
    return data


def _error(message, status=400):
    return JsonResponse({"error": message}, status=status)


NOT_FOUND = "No such conversation."


def _owned_conversation(request, conversation_id):
    """The user's conversation, or None: another user's is exactly like one that does not exist."""
    return selectors.conversation_for(user=request.user, conversation_id=conversation_id)


IMAGE_SECTION = "Image generation"


def _image_section(registry):
    """The picker's own section for image models (the config's, or the legacy variables')."""
    models = [
        {
            "key": model.key, "label": model.label, "simulated": model.simulated, "image": True,
            "sizes": ",".join(options["sizes"]), "qualities": ",".join(options["qualities"]),
            "styles": ",".join(options["styles"]),
        }
        for model, options in picker_models(registry)
    ]
    return [{"name": IMAGE_SECTION, "models": models}] if models else []


def _model_groups(registry):
    """The picker: chat models grouped by group, in the order of the config file; then the
    image models in a section of their own."""
    chat_keys = {model.key for model in registry.chat_models()}
    groups = []
    for name, models in registry.groups():
        usable = [model for model in models if model.key in chat_keys]
        if usable:
            groups.append({"name": name, "models": usable})
    return groups + _image_section(registry)


@require_GET
def chat_page(request, conversation_id=None):
    """The chat UI; with an id, that conversation is opened (its messages load as JSON)."""
    conversation = None
    if conversation_id is not None:
        conversation = _owned_conversation(request, conversation_id)
        if conversation is None:
            raise Http404(NOT_FOUND)
    registry = get_registry().for_user(request.user)  # the picker shows only the user's models
    groups = _model_groups(registry)
    chat_models = registry.chat_models()
    selected = conversation.model_key if conversation else (chat_models[0].key if chat_models else "")
    conversations, has_more = selectors.list_conversations(user=request.user)
    return render(
        request,
        "chat/chat.html",
        {
            "conversation": conversation,
            "model_groups": groups,
            "selected_model": selected,
            "conversations": conversations,
            "has_more": has_more,
            "protocol_version": protocol.PROTOCOL_VERSION,
            "stream_silence_ms": settings.CHAT_STREAM_SILENCE * 1000,
        },
    )


@require_GET
def conversation_list(request):
    """GET ?page=N&archived=1&folder=ID: one page of the sidebar, pinned first, then most
    recently updated (``folder``: only that folder of the user's)."""
    try:
        page = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        return _error("page must be a whole number, like ?page=2.")
    if page > MAX_PAGE:
        return _error(f"page must be at most {MAX_PAGE}.")
    archived = request.GET.get("archived", "0") in ("1", "true", "yes")
    folder_id = None
    if request.GET.get("folder"):
        folder = folder_for(user=request.user, folder_id=request.GET["folder"])
        if folder is None:
            return _error("No such folder.", status=404)
        folder_id = folder.id
    items, has_more = selectors.list_conversations(
        user=request.user, archived=archived, page=page, folder_id=folder_id
    )
    return JsonResponse(
        {"items": [conversation_to_dict(c) for c in items], "page": page, "has_more": has_more}
    )


@require_GET
def conversation_detail(request, conversation_id):
    """GET: the conversation and every message of every branch (deleting is POST …/delete)."""
    conversation = _owned_conversation(request, conversation_id)
    if conversation is None:
        return _error(NOT_FOUND, status=404)
    messages = selectors.conversation_messages(conversation=conversation)
    images = attachments_by_message(owner=request.user, message_ids=[m.id for m in messages])
    data = conversation_to_dict(conversation)
    return JsonResponse(
        {
            "conversation": data,
            "messages": [
                message_to_dict(m, for_staff=request.user.is_staff, attachments=images.get(m.id, ()))
                for m in messages
            ],
            "current_leaf_id": data["current_leaf_id"],
        }
    )


LOCK_RETRIES = 3


def _write_view(handler):
    """POST + owner check (JSON 404) + JSON body + clear 400s for bad input."""

    @require_POST
    def view(request, conversation_id):
        # PostgreSQL may pick this transaction as a deadlock victim (a delete locks the
        # conversation, then its messages; the checkpoint writer updates a message, then checks
        # the usage row's key on the conversation): it has written nothing, so run it again.
        for attempt in range(LOCK_RETRIES):
            try:
                return _write(request, conversation_id)
            except OperationalError as exc:
                sqlstate = getattr(exc.__cause__, "sqlstate", None)
                if sqlstate not in ("40P01", "40001") or attempt == LOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _write(request, conversation_id):
        try:
            with transaction.atomic():
                # Locked: a delete from another tab either went first (this is a 404) or waits
                # for this write; a plain save() of a deleted row would fail, or insert it again.
                conversation = (
                    Conversation.objects.select_for_update()
                    .filter(owner=request.user, id=conversation_id)
                    .first()
                )
                if conversation is None:
                    return _error(NOT_FOUND, status=404)
                conversation = handler(conversation, _json_body(request))
        except (BadRequest, services.InvalidSettings) as exc:
            return _error(str(exc))
        if conversation is None:
            return JsonResponse({"deleted": str(conversation_id)})
        return JsonResponse({"conversation": conversation_to_dict(conversation)})

    view.__name__ = handler.__name__
    view.__doc__ = handler.__doc__
    return view


@_write_view
def rename(conversation, data):
    """{title}: the user's title (the title model never overwrites it)."""
    return services.rename_conversation(conversation=conversation, title=_string(data, "title"))


@_write_view
def archive(conversation, data):
    """{archived: true|false}."""
    archived = data.get("archived", True)
    if not isinstance(archived, bool):
        raise BadRequest("archived must be true or false.")
    return services.archive_conversation(conversation=conversation, archived=archived)


@_write_view
def delete(conversation, data):
    """Delete the conversation and its messages; an answer still being written is stopped
    (wherever it runs) and its usage is recorded without the conversation."""
    streaming = conversation.messages.filter(status=Message.Status.STREAMING).values_list("id", "worker")
    for message_id, worker in streaming:
        async_to_sync(stop_answer)(message_id, worker=worker)
    services.delete_conversation(conversation=conversation)
    return None


@_write_view
def update_settings(conversation, data):
    """{system_prompt?, temperature?, max_output_tokens?, image_detail?, model_key?}; null clears
    a number."""
    settings = {name: data[name] for name in services.SETTINGS_FIELDS if name in data}
    unknown = set(data) - set(settings)
    if unknown:
        raise BadRequest(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    if "system_prompt" in settings and not isinstance(settings["system_prompt"], (str, type(None))):
        raise BadRequest("system_prompt must be text.")
    if "model_key" in settings and not isinstance(settings["model_key"], str):
        raise BadRequest("model_key must be the key of a configured model.")
    return services.update_settings(conversation=conversation, **settings)


@_write_view
def select_leaf(conversation, data):
    """{message_id}: show that branch (the `< 1/2 >` arrows); a reload keeps it."""
    return services.select_branch(conversation=conversation, message_id=_string(data, "message_id"))


def _string(data, name):
    value = data.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string.")
    return value


@require_GET
def context(request, conversation_id):
    """GET: how full the conversation's context is (see ``budget.context_usage``)."""
    conversation = _owned_conversation(request, conversation_id)
    if conversation is None:
        return _error(NOT_FOUND, status=404)
    data = context_usage(conversation=conversation)
    if data is None:
        return _error(f"The model {conversation.model_key} is no longer configured.", status=409)
    return JsonResponse(data)


@require_GET
def usage(request, conversation_id):
    """GET: the tokens and cost the conversation has used (``selectors.conversation_usage``)."""
    conversation = _owned_conversation(request, conversation_id)
    if conversation is None:
        return _error(NOT_FOUND, status=404)
    return JsonResponse(selectors.conversation_usage(conversation=conversation))
