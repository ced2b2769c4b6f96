"""Building the prompt: system prompt, then as many recent messages of the branch as fit."""

from dataclasses import dataclass

from apps.azure.tokens import count_message, count_messages
from apps.chat.models import Message

DEFAULT_OUTPUT_BUDGET = 4096


class PromptTooLong(Exception):
    """Even the newest message alone does not fit the model's context window."""

    def __init__(self, *, needed, available, model_key):
        super().__init__(
            f"Your message needs about {needed:,} tokens, but {model_key} can take "
            f"{available:,} tokens of prompt (its context window minus room for the answer). "
            "Shorten the message or pick a model with a larger context window."
        )
        self.needed = needed
        self.available = available


@dataclass(frozen=True)
class Prompt:
    messages: list
    prompt_tokens: int
    dropped: int  # older messages of the branch left out to fit the window
    budget: int
    summarised: int = 0  # older messages stood for by the summary system message


def output_budget(*, model, conversation):
    """Tokens kept free for the answer."""
    wanted = conversation.max_output_tokens or model.max_output or DEFAULT_OUTPUT_BUDGET
    return min(wanted, model.context_window // 2)


def history_entry(message):
    """The chat-completions message for one stored message, or None to leave it out."""
    if message.role == Message.Role.ASSISTANT and not message.content:
        return None  # an answer that failed before writing anything
    image_parts = getattr(message, "image_parts", None)  # see apps.chat.vision
    if image_parts:
        text = [{"type": "text", "text": message.content}] if message.content else []
        return {"role": message.role, "content": [*text, *image_parts]}
    return {"role": message.role, "content": message.content}


SUMMARY_HEADING = "Summary of the earlier part of this conversation (those messages are not repeated):"


def summary_entry(summary):
    """The system message that carries a Summary checkpoint ahead of the recent messages."""
    return {"role": "system", "content": f"{SUMMARY_HEADING}\n\n{summary.text}"}


def after_summary(branch, summary):
    """The messages of ``branch`` the summary does not cover (all of them without one)."""
    if summary is None:
        return list(branch)
    ids = [m.id for m in branch]
    if summary.last_message_id not in ids:
        return list(branch)
    return list(branch[ids.index(summary.last_message_id) + 1 :])


def build_prompt(*, conversation, branch, model, summary=None, allow_empty=False):
    """Fit ``branch`` (oldest first, ending with the user's message) into the model's window.

    With ``summary`` (a Summary checkpoint on this branch) the messages it covers are replaced
    by one system message carrying it, after the system prompt. Counts with tiktoken for the
    model's family; the newest message is always kept, older ones are dropped first. Raises
    PromptTooLong when the newest message alone cannot fit (unless ``allow_empty``, for
    measuring a branch rather than sending it).
    """
    budget = model.context_window - output_budget(model=model, conversation=conversation)
    head = []
    if conversation.system_prompt.strip():
        head.append({"role": "system", "content": conversation.system_prompt})
    remaining = after_summary(branch, summary)
    summarised = 0
    if summary is not None and len(remaining) < len(branch):
        head.append(summary_entry(summary))
        summarised = summary.covered_count
    used = count_messages(head, model.key)
    entries = [entry for entry in map(history_entry, remaining) if entry is not None]
    kept = []
    for entry in reversed(entries):
        cost = count_message(entry, model.key)
        if used + cost > budget:
            break
        kept.append(entry)
        used += cost
    if not kept and entries and not allow_empty:
        needed = count_messages([*head, entries[-1]], model.key)
        raise PromptTooLong(needed=needed, available=budget, model_key=model.key)
    kept.reverse()
    return Prompt(
        messages=head + kept, prompt_tokens=used, dropped=len(entries) - len(kept), budget=budget,
        summarised=summarised,
    )
