"""Token accounting and context budgets.

- ``record_usage``: one UsageRecord per model call (chat answers at their final write, titles,
  summaries), with its purpose. When the upstream sent no usage, Lapis counts the tokens itself
  with ``apps.azure.tokens`` and marks the row ``estimated``.
- ``record_failure``: a title or summary call that failed, for staff (admin) and the log.
- ``context_usage``: how full the conversation's context is: the prompt the next message would be
  sent with (system prompt, summary, recent messages of the current branch), counted exactly as
  ``apps.chat.prompts.build_prompt`` counts it, against the model's window minus the answer's room.
"""

import asyncio
import logging

from apps.azure.registry import get_registry
from apps.azure.tokens import count_messages, count_text
from apps.chat.models import BackgroundCallFailure, Message, UsageRecord
from apps.chat.prompts import PromptTooLong, build_prompt, output_budget
from apps.chat.selectors import branch_to
from apps.chat.serializers import usage_dict

logger = logging.getLogger("lapis.chat")


async def usage_fields(
    *, purpose, model, user_id, conversation_id, usage=None, messages=None, text=""
):
    """The UsageRecord fields of one call: ``usage`` (client Usage) or else an estimate from
    ``messages`` and ``text`` (counted off the event loop: a long prompt takes a while)."""
    reasoning = cached = 0
    if usage is not None:
        prompt, completion, estimated = usage.prompt_tokens, usage.completion_tokens, False
        reasoning = getattr(usage, "reasoning_tokens", 0) or 0
        cached = getattr(usage, "cached_tokens", 0) or 0
    else:
        prompt, completion = await asyncio.to_thread(_estimate, model.key, messages, text)
        estimated = True
    prompt, completion = max(prompt or 0, 0), max(completion or 0, 0)
    cached = min(max(cached, 0), prompt)
    return {
        "user_id": user_id,
        "conversation_id": conversation_id,
        "purpose": purpose,
        "model_key": model.key,
        "deployment": model.deployment or "",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": max(reasoning, 0),
        "cached_tokens": cached,
        "estimated": estimated,
        **priced(model, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached),
    }


def priced(model, *, prompt_tokens, completion_tokens, cached_tokens=0):
    """{cost, currency} of one call at ``model``'s price now; cost None without a price."""
    price = getattr(model, "pricing", None)
    if price is None:
        return {"cost": None, "currency": ""}
    cost = price.cost(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cached_tokens=cached_tokens
    )
    return {"cost": cost, "currency": price.currency}


def message_usage(record):
    """What a chat answer shows of its UsageRecord fields ``record``: the Message fields to
    store with its final state, and the ``usage`` of its ``done`` frame (None without one)."""
    if record is None:
        return {}, None
    fields = {
        "prompt_tokens": record["prompt_tokens"],
        "completion_tokens": record["completion_tokens"],
        "usage_estimated": record["estimated"],
        "cost": record["cost"],
        "currency": record["currency"],
    }
    if record["reasoning_tokens"]:
        fields["reasoning_tokens"] = record["reasoning_tokens"]
    return fields, usage_dict(
        prompt_tokens=record["prompt_tokens"], completion_tokens=record["completion_tokens"],
        reasoning_tokens=record["reasoning_tokens"] or None, estimated=record["estimated"],
        cost=record["cost"], currency=record["currency"],
    )


async def record_usage(
    *, purpose, model, user_id, conversation_id, usage=None, messages=None, text=""
):
    """Store the tokens of one call (see ``usage_fields``). Never raises: accounting must not
    break an answer. A chat answer's usage is written with its final state instead
    (apps.chat.checkpoints), in one transaction."""
    try:
        fields = await usage_fields(
            purpose=purpose, model=model, user_id=user_id, conversation_id=conversation_id,
            usage=usage, messages=messages, text=text,
        )
        await UsageRecord.objects.acreate(**fields)
    except Exception:
        logger.exception("Recording %s usage for conversation %s failed", purpose, conversation_id)


def _estimate(model_key, messages, text):
    """(prompt tokens, completion tokens) counted with tiktoken, for a call without usage."""
    return (count_messages(messages, model_key) if messages else 0), count_text(text, model_key)


class UnusableOutput(Exception):
    """A title or summary call answered, but with nothing usable; ``code`` and ``detail``
    (naming the model, never a secret) go to ``record_failure``."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


async def record_failure(*, purpose, model_key, user_id, conversation_id, code, detail):
    """An admin-visible record and a log line (the detail names deployments, never secrets)."""
    logger.warning(
        "%s call for conversation %s failed (%s): %s", purpose, conversation_id, code, detail
    )
    try:
        await BackgroundCallFailure.objects.acreate(
            purpose=purpose,
            model_key=model_key or "",
            user_id=user_id,
            conversation_id=conversation_id,
            error_code=code[:60],
            admin_detail=detail or "",
        )
    except Exception:
        logger.exception("Recording a %s failure for conversation %s failed", purpose, conversation_id)


def context_usage(*, conversation):
    """{model_key, window, output_budget, prompt_budget, used, messages, dropped, summary}.

    ``used`` is what the current branch costs as the next request's prompt (without the next
    message); ``summary`` is the checkpoint that request would carry, or None.
    """
    from apps.chat.summaries import summary_for_branch_sync

    model = get_registry().get(conversation.model_key)
    if model is None:
        return None
    messages = {m.id: m for m in conversation.messages.all()}
    branch = branch_to(conversation.current_leaf_id, messages)
    branch = [m for m in branch if m.status != Message.Status.STREAMING]
    summary = summary_for_branch_sync(conversation=conversation, branch=branch)
    reserve = output_budget(model=model, conversation=conversation)
    try:
        prompt = build_prompt(
            conversation=conversation, branch=branch, model=model, summary=summary,
            allow_empty=True,
        )
        used, dropped, sent = prompt.prompt_tokens, prompt.dropped, len(prompt.messages)
    except PromptTooLong as exc:
        used, dropped, sent = exc.needed, 0, 0
    return {
        "model_key": model.key,
        "window": model.context_window,
        "output_budget": reserve,
        "prompt_budget": model.context_window - reserve,
        "used": used,
        "messages": sent,
        "dropped": dropped,
        "summary": None
        if summary is None
        else {
            "id": str(summary.id),
            "last_message_id": str(summary.last_message_id),
            "covered_count": summary.covered_count,
            "text": summary.text,
            "model_key": summary.model_key,
            "created": summary.created.isoformat(),
        },
    }
