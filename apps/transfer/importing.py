"""Importing an export file: each conversation in one transaction (all of it or none), and a
report of what was taken and what was left out, with the reason.

The file's size is capped before it is read (``IMPORT_MAX_BYTES``, also in ``project.bodies``);
text fields are capped in length and checked for what the databases cannot store.
"""

import datetime as dt
import io
import json
import logging
import zipfile
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.urls import reverse
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.transfer import formats
from project.limits import unstorable_reason

logger = logging.getLogger("apps.transfer")

MESSAGE_MAX_CHARS = 200_000
SYSTEM_PROMPT_MAX_CHARS = 20_000
TITLE_MAX_CHARS = 200
LISTED_MAX = 50  # left-out entries listed per conversation; the rest are counted


class ImportRefused(ValueError):
    """The whole file is refused (too big, not JSON, no known format); the message says why."""


@dataclass
class Report:
    source: str = ""
    imported: list = field(default_factory=list)  # {title, id, url, messages, branches, left_out}
    skipped: list = field(default_factory=list)  # {title, reason}

    def as_dict(self):
        return {"source": self.source, "imported": self.imported, "skipped": self.skipped}


def human_bytes(count):
    from apps.media.images import human_bytes as human

    return human(count)


def too_big_message(size):
    limit = settings.IMPORT_MAX_BYTES
    return f"The file is {human_bytes(size)}; the largest import is {human_bytes(limit)} (IMPORT_MAX_BYTES)."


def _unzipped(data):
    """The JSON inside an export zip: ChatGPT's whole export (its ``conversations.json``) or
    Lapis's (every ``conversations/*.json``, as a list). What is unpacked is capped like the
    file itself, counting the bytes really read (a zip's declared sizes may lie)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        raise ImportRefused("The file looks like a zip but cannot be opened.") from None
    chatgpt = [n for n in names if n.rsplit("/", 1)[-1] == "conversations.json"]
    lapis = [n for n in names if n.startswith("conversations/") and n.endswith(".json")]
    if not chatgpt and not lapis:
        raise ImportRefused("The zip holds neither a ChatGPT conversations.json nor a Lapis export's conversations/*.json.")
    budget = settings.IMPORT_MAX_BYTES
    parts = []
    for name in chatgpt[:1] or lapis:
        try:
            with archive.open(name) as member:
                part = member.read(budget + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError):
            raise ImportRefused(f"{name} in the zip cannot be unpacked.") from None
        budget -= len(part)
        if budget < 0:
            raise ImportRefused(
                f"Unpacked, the zip is larger than the largest import ({human_bytes(settings.IMPORT_MAX_BYTES)})."
            )
        parts.append((name, part))
    if chatgpt:
        return _parse(parts[0][1], parts[0][0])
    return [_parse(part, name) for name, part in parts]


def load(data):
    """Parsed JSON from the file's bytes (JSON, or an export zip); raises ImportRefused with
    what and where."""
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(too_big_message(len(data)))
    if data[:4] == b"PK\x03\x04":
        return _unzipped(data)
    return _parse(data, "The file")


def _parse(data, where):
    where = where if where == "The file" else f"{where} in the zip"
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{where} is not UTF-8 text (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise ImportRefused(f"{where} holds JSON nested too deeply.") from None


def import_file(*, user, data, default_model_key=""):
    """Import every conversation in the export ``data`` (bytes) for ``user``; returns a Report.

    ``default_model_key``: the model imported conversations continue with when the file names
    none that ``user`` may use. Raises ImportRefused when the file as a whole cannot be read.
    """
    document = load(data)
    try:
        source, _ = formats.detect(document)
    except formats.NotAnExport as exc:
        raise ImportRefused(str(exc)) from None
    report = Report(source=source)
    from apps.azure.registry import get_registry

    usable = {spec.key for spec in get_registry().for_user(user).chat_models()}
    for item in formats.conversations(document):
        if isinstance(item, formats.Unreadable):
            report.skipped.append({"title": item.title, "reason": item.reason})
            continue
        reason = _unsafe(item)
        if reason:
            report.skipped.append({"title": _clean_title(item.title, item.source), "reason": reason})
            continue
        try:
            ordered = _ordered(item)
        except formats.NotAnExport as exc:
            report.skipped.append({"title": _clean_title(item.title, item.source), "reason": str(exc)})
            continue
        if item.source != "Lapis":
            item.model_key = item.model_key if item.model_key in usable else default_model_key
        try:
            conversation = _write(user=user, parsed=item, ordered=ordered)
        except DatabaseError as exc:  # rolled back whole: nothing of it stays
            logger.warning("import of a conversation failed: %s", type(exc).__name__)
            report.skipped.append({"title": _clean_title(item.title, item.source),
                                   "reason": "the database could not store it; nothing of it was kept"})
            continue
        left_out = [{"what": what, "reason": why} for what, why in item.left_out[:LISTED_MAX]]
        if len(item.left_out) > LISTED_MAX:
            left_out.append({"what": f"{len(item.left_out) - LISTED_MAX} more", "reason": "not listed"})
        report.imported.append({
            "title": conversation.display_title,
            "id": str(conversation.pk),
            "url": reverse("chat:conversation", args=[conversation.pk]),
            "messages": len(ordered),
            "branches": _leaf_count(ordered),
            "left_out": left_out,
        })
    return report


def _clean_title(title, source):
    title = " ".join((title or "").split())[:TITLE_MAX_CHARS]
    return title or f"Imported from {source}"


def _unsafe(parsed):
    """Why the conversation cannot be stored as it is (too long, NUL, lone surrogate), or None."""
    if not parsed.messages:
        return "it has no user or assistant message with text"
    if len(parsed.system_prompt) > SYSTEM_PROMPT_MAX_CHARS:
        return f"its system prompt is longer than {SYSTEM_PROMPT_MAX_CHARS} characters"
    for value, where in ((parsed.title, "its title"), (parsed.system_prompt, "its system prompt"), (parsed.model_key, "its model")):
        if reason := unstorable_reason(value):
            return f"{where} {reason}"
    for msg in parsed.messages:
        if len(msg.content) > MESSAGE_MAX_CHARS or len(msg.reasoning) > MESSAGE_MAX_CHARS:
            return f"message {msg.key} is longer than {MESSAGE_MAX_CHARS} characters"
        for value in (msg.content, msg.reasoning, msg.model_key, *(v for v in msg.extra.values() if isinstance(v, str))):
            if reason := unstorable_reason(value):
                return f"message {msg.key} {reason}"
    return None


def _ordered(parsed):
    """The messages parents first (siblings by time), or NotAnExport for a loop in the links."""
    by_key = {m.key: m for m in parsed.messages}
    children = {}
    for msg in parsed.messages:
        parent = msg.parent if msg.parent in by_key else None
        msg.parent = parent
        children.setdefault(parent, []).append(msg)
    base = parsed.created or timezone.now()
    order, queue = [], deque(sorted(children.get(None, []), key=lambda m: _when(m, base)))
    while queue:
        msg = queue.popleft()
        order.append(msg)
        queue.extend(sorted(children.get(msg.key, []), key=lambda m: _when(m, base)))
    if len(order) != len(parsed.messages):
        raise formats.NotAnExport("its messages' parent links form a loop")
    return order


def _when(msg, base):
    return msg.created or base


def _leaf_count(ordered):
    parents = {m.parent for m in ordered}
    return sum(1 for m in ordered if m.key not in parents)


def _int_or_none(value):
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**31 - 1:
        return value
    return None


def _times(parsed, ordered):
    """A creation time per message: the file's, made strictly later than its parent's where it
    is missing or earlier (Lapis orders siblings and branches by it)."""
    base = parsed.created or (min((m.created for m in ordered if m.created), default=None)) or timezone.now()
    times = {}
    for index, msg in enumerate(ordered):
        when = msg.created or base + dt.timedelta(microseconds=index)
        parent_time = times.get(msg.parent)
        if parent_time is not None and when <= parent_time:
            when = parent_time + dt.timedelta(microseconds=1)
        times[msg.key] = when
    return times


STATUSES = set(Message.Status.values) - {Message.Status.STREAMING}


def _message_fields(msg):
    extra = msg.extra
    status = extra.get("status") or Message.Status.COMPLETE
    if status not in STATUSES:  # an answer exported mid-stream was cut there
        status = Message.Status.INTERRUPTED
    return {
        "status": status,
        "group": extra.get("group", "")[:200],
        "deployment": extra.get("deployment", "")[:200],
        "finish_reason": extra.get("finish_reason", "")[:40],
        "prompt_tokens": _int_or_none(extra.get("prompt_tokens")),
        "completion_tokens": _int_or_none(extra.get("completion_tokens")),
        "reasoning_tokens": _int_or_none(extra.get("reasoning_tokens")),
        "error_code": extra.get("error_code", "")[:60],
        "error_message": extra.get("error_message", "")[:2000],
        "notice": extra.get("notice", "")[:2000],
    }


def _conversation_settings(parsed):
    values = parsed.settings
    result = {}
    if values.get("title_source") in Conversation.TitleSource.values:
        result["title_source"] = values["title_source"]
    temperature = values.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and 0 <= temperature <= 2:
        result["temperature"] = float(temperature)
    max_tokens = values.get("max_output_tokens")
    if _int_or_none(max_tokens) and 1 <= max_tokens <= 200_000:
        result["max_output_tokens"] = max_tokens
    if values.get("image_detail") in Conversation.ImageDetail.values:
        result["image_detail"] = values["image_detail"]
    if isinstance(values.get("archived"), bool):
        result["archived"] = values["archived"]
    return result


@transaction.atomic
def _write(*, user, parsed, ordered):
    """One conversation and all its messages, or nothing."""
    title = " ".join(parsed.title.split())[:TITLE_MAX_CHARS]
    fields = {"title_source": Conversation.TitleSource.USER if title else Conversation.TitleSource.NONE}
    fields.update(_conversation_settings(parsed))
    conversation = Conversation.objects.create(
        owner=user, title=title, model_key=parsed.model_key, system_prompt=parsed.system_prompt, **fields
    )
    times = _times(parsed, ordered)
    rows, ids = [], {}
    for msg in ordered:
        row = Message(
            conversation=conversation, parent_id=ids.get(msg.parent), role=msg.role, content=msg.content,
            reasoning=msg.reasoning, model_key=msg.model_key, **_message_fields(msg),
        )
        ids[msg.key] = row.id
        rows.append(row)
    Message.objects.bulk_create(rows, batch_size=500)
    _restamp(rows, [times[msg.key] for msg in ordered])
    leaf = ids.get(parsed.current) or _newest_leaf(ordered, times, ids)
    created = parsed.created or min(times.values())
    Conversation.objects.filter(pk=conversation.pk).update(
        current_leaf_id=leaf, created=created, updated=parsed.updated or max(times.values())
    )
    conversation.refresh_from_db()
    return conversation


def _restamp(rows, times):
    """Give the rows their own creation times (bulk_create stamped them "now").

    One parameterised UPDATE run for every row: ``bulk_update`` builds a CASE expression per
    row, which took 17 s for 5,000 messages.
    """
    meta = Message._meta
    connection = connections[router.db_for_write(Message)]
    created, updated, pk = meta.get_field("created"), meta.get_field("updated"), meta.pk
    sql = "UPDATE {} SET {} = %s, {} = %s WHERE {} = %s".format(
        *(connection.ops.quote_name(name) for name in (meta.db_table, created.column, updated.column, pk.column))
    )
    params = []
    for row, when in zip(rows, times, strict=True):
        value = created.get_db_prep_value(when, connection)
        params.append((value, value, pk.get_db_prep_value(row.pk, connection)))
        row.created = row.updated = when
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _newest_leaf(ordered, times, ids):
    """Where Lapis opens a conversation whose file names no current message: its newest leaf
    along the newest children (as the chat's branch arrows land)."""
    children = {}
    for msg in ordered:
        children.setdefault(msg.parent, []).append(msg)
    roots = children.get(None, [])
    current = max(roots, key=lambda m: times[m.key])
    while children.get(current.key):
        current = max(children[current.key], key=lambda m: times[m.key])
    return ids[current.key]
