"""Conversation titles from the title model (``titleConvo``, ``titleModel``, ``titleMethod``).

When: right after the first user message is stored, in parallel with the answer, as its own
asyncio task. Why not after the first exchange (LibreChat's way): the title only needs the
question, so the sidebar and the tab show a real title within about a second instead of after the
whole answer has streamed (often tens of seconds), and the call uses the title model's own
deployment, so it neither waits for nor slows down the answer. Nothing awaits the task; every
error is caught, recorded and replaced by a fallback title, so it can never break a chat.

How: ``completion`` asks for the title as plain text; ``functions`` forces a ``set_title``
function call and takes its argument. Output is capped (tokens), timed out, cleaned (thinking
blocks, markdown, quotes, labels, trailing punctuation) and cut to TITLE_MAX_CHARS. The write is
one conditional UPDATE (``title_source`` still "none"), so a rename by the user, even one that
lands while the call runs, is never overwritten. Then a ``title`` frame goes to every socket of
the owner (all tabs).
"""

import asyncio
import json
import logging
import re
import unicodedata

from channels.layers import get_channel_layer

from apps.azure.calls import complete
from apps.azure.errors import UpstreamError
from apps.azure.registry import aget_registry
from apps.chat import protocol
from apps.chat.budget import UnusableOutput, record_failure, record_usage
from apps.chat.models import Conversation, Purpose

logger = logging.getLogger("lapis.chat")

TITLE_MAX_TOKENS = 24
FUNCTION_MAX_TOKENS = 48  # the JSON arguments around the title take tokens too
REASONING_MAX_TOKENS = 1024  # reasoning models spend tokens thinking before the title
TITLE_TIMEOUT = 15.0
TITLE_MAX_CHARS = 80
TITLE_INPUT_CHARS = 2000
FALLBACK_WORDS = 8
QUOTES = "\"'`“”‘’«»„‚‹›「」『』"
TRAILING = ".,;:!?。，；：！？…-–— "
THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
UNCLOSED_THINK = re.compile(r"<(think|thinking|reasoning)>.*", re.S | re.I)
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=[A-Z0-9])")
LABEL = re.compile(r"^\s*(#+\s*|\*\*\s*title\s*\*\*\s*[:：]?\s*|title\s*[:：]\s*)", re.I)
SET_TITLE = {
    "type": "function",
    "function": {
        "name": "set_title",
        "description": "Set the title of the conversation.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {
                    "type": "string",
                    "description": "A short title, at most 6 words, in the language of the message.",
                }
            },
            "required": ["title"],
        },
    },
}
INSTRUCTIONS = {
    "completion": (
        "You name chat conversations. Reply with a short title (at most 6 words) for the "
        "conversation that starts with the user's message, written in the same language as that "
        "message. Reply with the title only: no quotes, no trailing punctuation, no explanation. "
        "Do not answer the message."
    ),
    "functions": (
        "You name chat conversations. Call set_title with a short title (at most 6 words) for "
        "the conversation that starts with the user's message, written in the same language as "
        "that message. Do not answer the message."
    ),
}

_tasks = set()  # running title tasks, kept from being garbage-collected


def start_title(exchange, *, user_id):
    """Start the title task for a conversation's first message; return it (or None).

    Call from the event loop right after the exchange is stored; returns at once.
    """
    question = exchange.user_message
    if not exchange.created or question is None or question.parent_id is not None:
        return None
    if exchange.conversation.title_source != Conversation.TitleSource.NONE:
        return None
    task = asyncio.create_task(
        generate_title(conversation_id=exchange.conversation.id, user_id=user_id, text=question.content),
        name=f"title-{exchange.conversation.id}",
    )
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def fallback_title(text):
    """The first words of the message (what users see when the title model fails)."""
    words = " ".join((text or "").split()).split(" ")
    title = " ".join(words[:FALLBACK_WORDS])
    title = _cut(title) + ("…" if len(words) > FALLBACK_WORDS else "")
    return title or "New conversation"


def clean_title(raw):
    """Model output → a title: no thinking, markdown, label, quotes or end punctuation; ≤ 80 chars."""
    text = strip_thinking(raw)
    line = next((part for part in text.splitlines() if part.strip()), "")
    line = "".join(ch for ch in line if unicodedata.category(ch)[0] != "C")
    line = LABEL.sub("", line)
    line = line.replace("**", "").replace("__", "").replace("`", "")
    # A model that wrote sentences instead of a title: the first sentence is the title.
    first, *rest = SENTENCE_END.split(line, maxsplit=1)
    if rest and len(first.split()) >= 3:
        line = first
    previous = None
    while previous != line:  # quotes inside punctuation inside quotes: peel until stable
        previous = line
        line = " ".join(line.split()).strip(QUOTES).rstrip(TRAILING).lstrip(" -–—*#")
    return _cut(line)


def strip_thinking(raw):
    """Model output without its thinking blocks (closed, or cut off by the token cap)."""
    return UNCLOSED_THINK.sub(" ", THINK.sub(" ", raw or ""))


def _cut(text):
    if len(text) <= TITLE_MAX_CHARS:
        return text
    cut = text[:TITLE_MAX_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > TITLE_MAX_CHARS // 2 else cut).rstrip(TRAILING)


def title_request(*, method, text):
    """(messages, tools, tool_choice, max_tokens) for the title call."""
    messages = [
        {"role": "system", "content": INSTRUCTIONS[method]},
        {"role": "user", "content": (text or "")[:TITLE_INPUT_CHARS]},
    ]
    if method == "functions":
        choice = {"type": "function", "function": {"name": "set_title"}}
        return messages, [SET_TITLE], choice, FUNCTION_MAX_TOKENS
    return messages, None, None, TITLE_MAX_TOKENS


def _title_from(completion, *, method):
    if method == "functions":
        for call in completion.tool_calls:
            if call.name == "set_title":
                try:
                    arguments = json.loads(call.arguments or "{}")
                except ValueError:
                    raise UnusableOutput(
                        "bad_title_arguments", f"set_title arguments are not JSON: {call.arguments[:80]!r}"
                    ) from None
                value = arguments.get("title") if isinstance(arguments, dict) else None
                if isinstance(value, str):
                    return clean_title(value)
                raise UnusableOutput("bad_title_arguments", "set_title was called without a title string")
        # A model (or a forcePrompt group) that answered in text instead of calling: use the text.
    return clean_title(completion.text)


async def ask_title_model(*, model, method, text, user_id, conversation_id):
    """One call to the title model; returns the cleaned title or raises UpstreamError/UnusableOutput."""
    messages, tools, tool_choice, max_tokens = title_request(method=method, text=text)
    params = {"max_tokens": REASONING_MAX_TOKENS if model.reasoning else max_tokens}
    completion = await complete(
        model, messages, params=params, tools=tools, tool_choice=tool_choice, timeout=TITLE_TIMEOUT,
        purpose="title",
    )
    raw = completion.text or "".join(call.arguments for call in completion.tool_calls)
    await record_usage(
        purpose=Purpose.TITLE, model=model, user_id=user_id, conversation_id=conversation_id,
        usage=completion.usage, messages=messages, text=raw,
    )
    title = _title_from(completion, method=method)
    if not title:
        raise UnusableOutput(
            "empty_title",
            f'title model "{model.key}" returned no usable title (finish reason {completion.finish_reason})',
        )
    return title


async def generate_title(*, conversation_id, user_id, text):
    """Title the conversation (model, else fallback) and tell every tab; never raises."""
    try:
        registry = await aget_registry()
        if not registry.title_convo:
            return None
        model = registry.title_model
        title, source = fallback_title(text), Conversation.TitleSource.FALLBACK
        try:
            if model is None or model.type == "image":
                raise UnusableOutput("no_title_model", "titleConvo is on but titleModel names no chat model")
            await _refuse_if_over_budget(user_id)
            async with asyncio.timeout(TITLE_TIMEOUT + 5):
                title = await ask_title_model(
                    model=model, method=registry.title_method, text=text, user_id=user_id,
                    conversation_id=conversation_id,
                )
            source = Conversation.TitleSource.MODEL
        except (UpstreamError, UnusableOutput) as exc:
            detail = getattr(exc, "admin_detail", None) or exc.detail
            await _failed(model, user_id, conversation_id, exc.code, detail)
        except TimeoutError:
            await _failed(model, user_id, conversation_id, "upstream_unreachable",
                          f'title model "{model.key}" gave no title within {TITLE_TIMEOUT + 5:g} s')
        return await write_title(conversation_id=conversation_id, user_id=user_id, title=title, source=source)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("Titling conversation %s failed", conversation_id)
        return None


async def _refuse_if_over_budget(user_id):
    """A title counts to the owner's budgets: none is asked for once one is used up."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model

    from apps.governance.quotas import OverBudget, check_budget

    user = await get_user_model().objects.aget(pk=user_id)
    try:
        await sync_to_async(check_budget)(user=user)
    except OverBudget as exc:
        raise UnusableOutput("over_budget", f"no title asked for: {exc.message}") from None


async def _failed(model, user_id, conversation_id, code, detail):
    await record_failure(
        purpose=Purpose.TITLE, model_key=model.key if model else "", user_id=user_id,
        conversation_id=conversation_id, code=code, detail=detail,
    )


async def write_title(*, conversation_id, user_id, title, source):
    """Store the title unless the conversation was titled meanwhile (e.g. renamed by the user);
    then send the ``title`` frame to all the owner's sockets. Returns the title or None."""
    written = await Conversation.objects.filter(
        id=conversation_id, title_source=Conversation.TitleSource.NONE
    ).aupdate(title=title, title_source=source)
    if not written:
        return None
    frame = protocol.title(conversation_id=conversation_id, title=title)
    from apps.chat.generation import user_group

    await get_channel_layer().group_send(user_group(user_id), {"type": "chat.frame", "frame": frame})
    return title
