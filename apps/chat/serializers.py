"""The JSON shapes of conversations and messages, shared by the HTTP API and the socket."""

from decimal import Decimal

from apps.azure.pricing import format_cost


def _iso(value):
    return value.isoformat() if value else None


def conversation_to_dict(conversation):
    return {
        "id": str(conversation.id),
        "title": conversation.display_title,
        "title_source": conversation.title_source,
        "model_key": conversation.model_key,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "max_output_tokens": conversation.max_output_tokens,
        "image_detail": conversation.image_detail,
        "archived": conversation.archived,
        "temporary": conversation.temporary,
        "pinned": conversation.pinned,
        "folder_id": str(conversation.folder_id) if conversation.folder_id else None,
        "current_leaf_id": str(conversation.current_leaf_id) if conversation.current_leaf_id else None,
        "created": _iso(conversation.created),
        "updated": _iso(conversation.updated),
    }


def message_attachments(message):
    """The message's stored images (one query; sync). For lists use ``attachments_by_message``."""
    from apps.media.models import Attachment

    return list(Attachment.objects.filter(message=message))


def message_to_dict(message, *, for_staff=False, attachments=()):
    """A message as clients see it; the admin-only error detail only ``for_staff``.

    ``attachments``: its stored images (apps.media), described for the page.
    """
    from apps.media.views import describe

    error = None
    if message.error_code:
        error = {
            "code": message.error_code,
            "message": message.error_message,
            "retry_after": message.retry_after,
        }
        if for_staff and message.error_detail:
            error["detail"] = message.error_detail
    usage = None
    if message.prompt_tokens is not None or message.completion_tokens is not None:
        usage = usage_dict(
            prompt_tokens=message.prompt_tokens, completion_tokens=message.completion_tokens,
            reasoning_tokens=message.reasoning_tokens, estimated=message.usage_estimated,
            cost=message.cost, currency=message.currency,
        )
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "client_id": message.client_id,
        "content": message.content,
        "reasoning": message.reasoning,
        "status": message.status,
        "model_key": message.model_key,
        "finish_reason": message.finish_reason,
        "usage": usage,
        "error": error,
        "notice": message.notice,
        "attachments": [describe(a) for a in attachments],
        "seq": message.seq,
        "created": _iso(message.created),
    }


def usage_dict(*, prompt_tokens, completion_tokens, reasoning_tokens=None, estimated=False,
               cost=None, currency=""):
    """The ``usage`` object of a message (socket and HTTP alike). ``cost`` is a decimal string
    (exact), ``cost_display`` the short form the page shows; both absent without a price."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "estimated": bool(estimated),
    }
    if reasoning_tokens is not None:
        usage["reasoning_tokens"] = reasoning_tokens
    if cost is not None:
        usage.update(cost=format(Decimal(cost).normalize(), "f"), currency=currency, cost_display=format_cost(cost, currency))
    return usage
