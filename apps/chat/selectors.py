"""Reads of conversations and messages, always scoped to their owner."""

from apps.chat.models import Conversation, Message

SIDEBAR_PAGE_SIZE = 30


def conversation_for(*, user, conversation_id):
    """The user's conversation with that id, or None (another user's is None too)."""
    return Conversation.objects.filter(owner=user, id=conversation_id).first()


def owned_messages(*, user):
    """The messages of ``user``'s conversations, each with its conversation; filter further."""
    return Message.objects.select_related("conversation").filter(conversation__owner=user)


async def amessage_for(*, user, message_id):
    """The message with that id if its conversation belongs to ``user``, else None."""
    return await owned_messages(user=user).filter(id=message_id).afirst()


def list_conversations(
    *, user, archived=False, page=1, page_size=SIDEBAR_PAGE_SIZE, folder_id=None
):
    """One page of the sidebar: pinned first, then most recently updated (temporary chats never); returns
    (items, has_more). ``folder_id`` (one of the user's folders: the caller checks) narrows it
    to that folder."""
    start = (max(page, 1) - 1) * page_size
    conversations = Conversation.objects.filter(owner=user, archived=archived, temporary=False)
    if folder_id is not None:
        conversations = conversations.filter(folder_id=folder_id)
    rows = list(conversations.order_by("-pinned", "-updated")[start : start + page_size + 1])
    return rows[:page_size], len(rows) > page_size


def conversation_messages(*, conversation):
    """Every message of the conversation (all branches), oldest first."""
    return list(conversation.messages.order_by("created"))


def branch_to(message_id, messages_by_id):
    """The messages from the root down to ``message_id``, given every message by id."""
    branch = []
    current = messages_by_id.get(message_id)
    while current is not None:
        branch.append(current)
        current = messages_by_id.get(current.parent_id)
    branch.reverse()
    return branch


def conversation_usage(*, conversation):
    """What the conversation has used so far, answers, titles and summaries alike:
    {prompt_tokens, completion_tokens, calls, estimated, unpriced_calls, costs: [{currency,
    cost, cost_display}]} (one aggregate query; costs per currency, as stored at write time)."""
    from django.db.models import Count, Q, Sum

    from apps.chat.models import UsageRecord
    from apps.chat.serializers import usage_dict

    rows = (
        UsageRecord.objects.filter(conversation_id=conversation.id, user_id=conversation.owner_id)
        .values("currency")
        .annotate(
            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), calls=Count("id"),
            spent=Sum("cost"), unpriced=Count("id", filter=Q(cost__isnull=True)),
            estimated=Count("id", filter=Q(estimated=True)),
        )
        .order_by("currency")
    )
    total = {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "estimated": False,
             "unpriced_calls": 0, "costs": []}
    for row in rows:
        total["prompt_tokens"] += row["prompt"] or 0
        total["completion_tokens"] += row["completion"] or 0
        total["calls"] += row["calls"]
        total["unpriced_calls"] += row["unpriced"]
        total["estimated"] = total["estimated"] or row["estimated"] > 0
        if row["spent"] is not None:
            shown = usage_dict(prompt_tokens=0, completion_tokens=0, cost=row["spent"],
                               currency=row["currency"])
            total["costs"].append({k: shown[k] for k in ("currency", "cost", "cost_display")})
    return total
