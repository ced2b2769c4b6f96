"""Summaries of long conversations: checkpoints that stand for the oldest messages of a branch.

Storage: a ``Summary`` row covers the branch from its root down to ``last_message`` (messages form
a tree, so that one id names the whole range; every branch through ``last_message`` can use it).
``previous`` links the checkpoint it extended, ``covered_count`` says how many messages it stands
for. Nothing is ever rewritten: a later overflow makes a new row from the previous summary plus
the messages that newly overflow (incremental, never from scratch), so a regenerated answer or a
sibling branch further up keeps using the checkpoint that matches its own path.

When: ``prepare_prompt`` runs before each answer. If the branch (after the current checkpoint)
fits the window minus the answer's room, nothing happens. If not, and ``summarize`` is on, the
oldest messages are summarised so that the recent ones take at most KEEP_FRACTION of what is
left after the summary's own reserve: the slack means the next few turns fit without another
summary call. With ``summarize`` off (or the summary call failing) the oldest messages are dropped
and the answer's notice says how many, and why.
"""

import asyncio
import logging

from apps.azure.calls import complete
from apps.azure.errors import UpstreamError
from apps.azure.tokens import count_message, count_messages, count_text
from apps.chat.budget import UnusableOutput, record_failure, record_usage
from apps.chat.models import Purpose, Summary
from apps.chat.prompts import after_summary, build_prompt, history_entry, output_budget
from apps.chat.titles import strip_thinking

logger = logging.getLogger("lapis.chat")

SUMMARY_TIMEOUT = 60.0
SUMMARY_MAX_TOKENS = 1024  # the most room a summary takes in any window
SUMMARY_MIN_TOKENS = 64
KEEP_FRACTION = 0.75
# Framing of the summary system message (heading, role, per-message overhead), kept free too.
SUMMARY_FRAMING = 40
SYSTEM = (
    "You keep a running summary of a chat conversation so it can go on after its older messages "
    "are removed from the model's context. Write in the language of the conversation. Keep "
    "names, facts, numbers, decisions, code identifiers, the user's goals and preferences, and "
    "open questions; leave out pleasantries. Plain prose, at most {words} words, no preamble."
)


def _latest(queryset):
    return queryset.order_by("-covered_count", "-created")


def summary_for_branch_sync(*, conversation, branch):
    """The deepest checkpoint on ``branch`` (a list of Messages, root first), or None."""
    ids = [m.id for m in branch]
    return _latest(Summary.objects.filter(conversation=conversation, last_message_id__in=ids)).first()


async def summary_for_branch(*, conversation_id, branch):
    ids = [m.id for m in branch]
    return await _latest(
        Summary.objects.filter(conversation_id=conversation_id, last_message_id__in=ids)
    ).afirst()


def summary_reserve(budget):
    """Tokens of the prompt budget a summary may take."""
    return max(SUMMARY_MIN_TOKENS, min(budget // 4, SUMMARY_MAX_TOKENS))


UNREAD = object()  # ``prepare_prompt``'s ``previous`` when the caller has not read it


async def prepare_prompt(*, message, branch, model, registry, previous=UNREAD):
    """The prompt for the answer ``message`` and the notice to show with it (maybe "").

    ``previous``: the branch's current checkpoint (``summary_for_branch``, None for none) when
    the caller read it already; else it is read here.
    Never fails because of a summary: on any summary problem the oldest messages are dropped,
    the notice says so and staff get a BackgroundCallFailure. Raises PromptTooLong like
    ``build_prompt`` when even the newest message does not fit.
    """
    conversation = message.conversation
    if previous is UNREAD:
        previous = await summary_for_branch(conversation_id=conversation.id, branch=branch)
    prompt = await asyncio.to_thread(
        build_prompt, conversation=conversation, branch=branch, model=model, summary=previous
    )
    if not prompt.dropped:
        return prompt, ""
    left_out = (
        f"{prompt.dropped} older message(s) were left out to fit {model.label}'s context window."
    )
    if not registry.summarize:
        return prompt, left_out
    summary_model = registry.summary_model
    try:
        if summary_model is None or summary_model.type == "image":
            raise UnusableOutput(
                "no_summary_model", "summarize is on but summaryModel names no chat model"
            )
        summary = await extend_summary(
            conversation=conversation, branch=branch, model=model, previous=previous,
            summary_model=summary_model,
        )
    except (UpstreamError, UnusableOutput) as exc:
        await record_failure(
            purpose=Purpose.SUMMARY,
            model_key=summary_model.key if summary_model else "",
            user_id=conversation.owner_id,
            conversation_id=conversation.id,
            code=exc.code,
            detail=getattr(exc, "admin_detail", None) or exc.detail,
        )
        return prompt, "The summary of earlier messages could not be made, so " + left_out
    if summary is None:
        return prompt, left_out
    prompt = await asyncio.to_thread(
        build_prompt, conversation=conversation, branch=branch, model=model, summary=summary
    )
    notice = (
        f"The earliest {summary.covered_count} message(s) are summarised to fit "
        f"{model.label}'s context window."
    )
    if prompt.dropped:  # the summary came out longer than its reserve
        notice += f" {prompt.dropped} more were left out."
    return prompt, notice


def _overflow(*, conversation, branch, model, previous):
    """The messages after ``previous`` that the new checkpoint must absorb (oldest first)."""
    budget = model.context_window - output_budget(model=model, conversation=conversation)
    head = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt.strip() else []
    target = int((budget - count_messages(head, model.key) - summary_reserve(budget) - SUMMARY_FRAMING) * KEEP_FRACTION)
    history = [m for m in after_summary(branch, previous) if history_entry(m) is not None]
    kept, used = 0, 0
    for candidate in reversed(history):
        cost = count_message(history_entry(candidate), model.key)
        if kept and used + cost > target:
            break
        kept, used = kept + 1, used + cost
    return history[: len(history) - kept], summary_reserve(budget)


def _text(content):
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") == "text":
                parts.append(part.get("text", ""))
            elif part.get("type") == "image_url":
                parts.append("[an image]")
        return "\n".join(parts)
    return content or ""


def _request(*, previous, overflow, summary_model, reserve):
    words = max(30, int(reserve * 0.6))
    transcript = "\n\n".join(
        f"{'User' if m.role == 'user' else 'Assistant'}: {_text(history_entry(m)['content'])}"
        for m in overflow
    )
    # The summary model's own window bounds what it can read: cut the transcript if needed.
    room = summary_model.context_window - reserve - 400
    tokens = count_text(transcript, summary_model.key)
    if tokens > room > 0:
        transcript = transcript[: int(len(transcript) * room / tokens)] + " …(cut)"
    if previous is not None:
        user = (
            f"Summary so far:\n{previous.text}\n\nMessages to add to it:\n\n{transcript}\n\n"
            "Write the updated summary."
        )
    else:
        user = f"Messages to summarise:\n\n{transcript}\n\nWrite the summary."
    return [{"role": "system", "content": SYSTEM.format(words=words)}, {"role": "user", "content": user}]


def clean_summary(raw):
    return strip_thinking(raw).strip()


async def extend_summary(*, conversation, branch, model, previous, summary_model):
    """Make the next checkpoint (previous summary + newly overflowing messages) and store it.

    Returns the new Summary, or None when nothing can be summarised (the newest message alone
    overflows). Raises UpstreamError or UnusableOutput.
    """
    overflow, reserve = await asyncio.to_thread(
        _overflow, conversation=conversation, branch=branch, model=model, previous=previous
    )
    if not overflow:
        return None
    messages = _request(previous=previous, overflow=overflow, summary_model=summary_model, reserve=reserve)
    cap = reserve - SUMMARY_FRAMING
    params = {"max_tokens": cap * 4 + 1024 if summary_model.reasoning else max(cap, 32)}
    completion = await complete(
        summary_model, messages, params=params, timeout=SUMMARY_TIMEOUT, purpose="summary"
    )
    text = clean_summary(completion.text)
    await record_usage(
        purpose=Purpose.SUMMARY, model=summary_model, user_id=conversation.owner_id,
        conversation_id=conversation.id, usage=completion.usage, messages=messages, text=text,
    )
    if not text:
        raise UnusableOutput(
            "empty_summary", f'summary model "{summary_model.key}" returned no text '
            f"(finish reason {completion.finish_reason})",
        )
    usage = completion.usage
    return await Summary.objects.acreate(
        conversation_id=conversation.id,
        last_message=overflow[-1],
        previous=previous,
        covered_count=(previous.covered_count if previous else 0) + len(overflow),
        text=text,
        model_key=summary_model.key,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
    )
