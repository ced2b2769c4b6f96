"""Reading other chat apps' exports (and Lapis's own) into one neutral shape, as untrusted input.

Every field is checked for its type and length; nothing is ever rendered as HTML here (the chat
renders answers through its sanitiser, and everything else as text). Roles are whitelisted: a
message of another role is left out, and its children hang from its nearest kept ancestor.
Each reader returns ``Parsed`` conversations, or ``Unreadable`` ones with the reason.
"""

import datetime as dt
from dataclasses import dataclass, field

ROLES = ("user", "assistant")
NO_PARENT = "00000000-0000-0000-0000-000000000000"  # LibreChat's parent of a root message
MAX_CONVERSATIONS = 10_000
MAX_MESSAGES = 10_000
MAX_KEY_CHARS = 200  # ids and model names: longer ones are not ids


@dataclass
class Msg:
    key: str
    parent: str | None
    role: str
    content: str
    created: dt.datetime | None = None
    model_key: str = ""
    reasoning: str = ""
    extra: dict = field(default_factory=dict)  # Lapis's own fields (status, usage, ...)


@dataclass
class Parsed:
    title: str
    source: str
    messages: list  # of Msg, any order; parents resolved to kept messages
    current: str | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    model_key: str = ""
    system_prompt: str = ""
    settings: dict = field(default_factory=dict)  # Lapis's own conversation fields
    left_out: list = field(default_factory=list)  # (what, reason)


@dataclass
class Unreadable:
    title: str
    reason: str


class NotAnExport(ValueError):
    """The file is none of the formats Lapis reads; the message says what it found."""


def text(value, default=""):
    return value if isinstance(value, str) else default


def key_of(value):
    """An id as a string (numbers too), or None when it is not an id."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_KEY_CHARS:
        return value
    return None


def timestamp(value):
    """A datetime from epoch seconds (or milliseconds) or an ISO 8601 string; None if unusable."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value
            result = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        elif isinstance(value, str) and 0 < len(value) <= 40:
            result = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if result.tzinfo is None:
                result = result.replace(tzinfo=dt.UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return result if 1990 <= result.year <= 2200 else None


def detect(data):
    """(format name, reader) for parsed JSON ``data``; raises NotAnExport."""
    items = data if isinstance(data, list) else [data]
    first = next((item for item in items if isinstance(item, dict)), None)
    if first is None:
        raise NotAnExport("The file holds no conversation objects (expected a JSON object or a list of them).")
    if first.get("format") == "lapis.conversation":
        return "Lapis", read_lapis
    if "mapping" in first:
        return "ChatGPT", read_chatgpt
    if isinstance(first.get("chat"), dict):
        return "Open WebUI", read_open_webui
    if "conversationId" in first or "messagesTree" in first or (
        isinstance(first.get("messages"), list)
        and any(isinstance(m, dict) and "messageId" in m for m in first["messages"][:5])
    ):
        return "LibreChat", read_librechat
    keys = ", ".join(sorted(str(k) for k in first)[:8]) or "none"
    raise NotAnExport(
        "This is not a ChatGPT (conversations.json), LibreChat, Open WebUI or Lapis export: "
        f"its first object has the keys {keys}."
    )


def conversations(data):
    """Yield Parsed or Unreadable for every conversation in ``data`` (at most MAX_CONVERSATIONS)."""
    source, reader = detect(data)
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if index >= MAX_CONVERSATIONS:
            yield Unreadable(
                f"{len(items) - MAX_CONVERSATIONS} more", f"a file may hold at most {MAX_CONVERSATIONS} conversations"
            )
            return
        if not isinstance(item, dict):
            yield Unreadable(f"item {index + 1}", "is not a JSON object")
            continue
        try:
            yield reader(item)
        except NotAnExport as exc:
            yield Unreadable(_title(item, index), str(exc))
        except (KeyError, TypeError, AttributeError, ValueError):
            # A field of an unexpected type that no check above foresaw: this one is skipped.
            yield Unreadable(_title(item, index), f"its shape is not that of a {source} export")


def _title(item, index):
    title = item.get("title")
    if not isinstance(title, str) and isinstance(item.get("chat"), dict):
        title = item["chat"].get("title")
    return " ".join(title.split())[:200] if isinstance(title, str) and title.strip() else f"conversation {index + 1}"


def _collapse(nodes, keep):
    """Parents of the kept nodes, skipping left-out ancestors: ``nodes`` is {key: parent key}.

    Returns {key: nearest kept ancestor or None}; a loop in the parent links raises NotAnExport.
    """
    resolved = {}
    above = {}  # left-out node → its nearest kept ancestor (memoised: chains are walked once)
    for key in keep:
        path, seen = [], set()
        parent = nodes.get(key)
        while parent is not None and parent not in keep and parent not in above:
            if parent in seen:
                raise NotAnExport("its messages' parent links form a loop")
            seen.add(parent)
            path.append(parent)
            parent = nodes.get(parent)
        if parent in above:
            parent = above[parent]
        for node in path:
            above[node] = parent
        resolved[key] = parent
    return resolved


def _nearest_kept(key, nodes, keep):
    seen = set()
    while key is not None and key not in keep and key not in seen:
        seen.add(key)
        key = nodes.get(key)
    return key if key in keep else None


# -- ChatGPT -------------------------------------------------------------------------------------

CHATGPT_TEXT_TYPES = ("text", "multimodal_text")


def _chatgpt_text(content, left_out, key):
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    texts = [part for part in parts if isinstance(part, str)]
    if len(texts) < len(parts):
        left_out.append((f"message {key}", "an image or file part (the export holds no file)"))
    return "\n".join(texts)


def read_chatgpt(item):
    """One conversation of ChatGPT's conversations.json: ``mapping`` {node id: {message, parent,
    children}}, ``current_node``; user and assistant text kept, the first system text becomes
    the system prompt, tools, code runs, browsing and hidden messages are left out."""
    title = _title(item, 0) if isinstance(item.get("title"), str) else "Imported from ChatGPT"
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise NotAnExport("it has no 'mapping' object of messages")
    if len(mapping) > MAX_MESSAGES * 2:
        raise NotAnExport(f"it has more than {MAX_MESSAGES * 2} nodes")
    parsed = Parsed(title=title, source="ChatGPT", messages=[], created=timestamp(item.get("create_time")),
                    updated=timestamp(item.get("update_time")))
    nodes, kept = {}, {}
    for node_key, node in mapping.items():
        key = key_of(node_key)
        if key is None or not isinstance(node, dict):
            parsed.left_out.append(("a node", "its id or its shape is not usable"))
            continue
        nodes[key] = key_of(node.get("parent"))
        message = node.get("message")
        if message is None:
            continue  # the tree's root placeholder
        msg = _chatgpt_message(key, message, parsed)
        if msg is not None:
            kept[key] = msg
    parents = _collapse(nodes, kept)
    for key, msg in kept.items():
        msg.parent = parents[key]
        parsed.messages.append(msg)
    parsed.current = _nearest_kept(key_of(item.get("current_node")), nodes, kept)
    slug = text(item.get("default_model_slug"))
    parsed.model_key = slug[:MAX_KEY_CHARS]
    return parsed


def _chatgpt_message(key, message, parsed):
    if not isinstance(message, dict):
        parsed.left_out.append((f"message {key}", "is not a JSON object"))
        return None
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    role = text(author.get("role"))
    content = message.get("content") if isinstance(message.get("content"), dict) else {}
    content_type = text(content.get("content_type"))
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    if metadata.get("is_visually_hidden_from_conversation") is True:
        return None  # ChatGPT's own scaffolding (empty system messages, context notes)
    if role == "system":
        body = _chatgpt_text(content, parsed.left_out, key) if content_type in CHATGPT_TEXT_TYPES else ""
        if body.strip() and not parsed.system_prompt:
            parsed.system_prompt = body
        return None
    if role not in ROLES:
        parsed.left_out.append((f"message {key}", f"its role {role[:40]!r} is not user or assistant"))
        return None
    if content_type not in CHATGPT_TEXT_TYPES:
        parsed.left_out.append((f"message {key}", f"content type {content_type[:40]!r} is not text"))
        return None
    body = _chatgpt_text(content, parsed.left_out, key)
    if not body.strip():
        parsed.left_out.append((f"message {key}", "has no text"))
        return None
    return Msg(key=key, parent=None, role=role, content=body, created=timestamp(message.get("create_time")),
               model_key=text(metadata.get("model_slug"))[:MAX_KEY_CHARS])


# -- LibreChat -----------------------------------------------------------------------------------


def _librechat_flat(item):
    """The messages as a flat list of (message, parent key): ``messages`` with parentMessageId,
    or with ``recursive`` a tree of ``children`` (walked without recursion)."""
    messages = item.get("messagesTree") or item.get("messages")
    if not isinstance(messages, list):
        raise NotAnExport("it has no 'messages' list")
    if not item.get("recursive") and "messagesTree" not in item:
        return [(m, None) for m in messages]
    flat, stack = [], [(m, None) for m in reversed(messages)]
    while stack:
        message, parent = stack.pop()
        if len(flat) > MAX_MESSAGES:
            raise NotAnExport(f"it has more than {MAX_MESSAGES} messages")
        flat.append((message, parent))
        children = message.get("children") if isinstance(message, dict) else None
        if isinstance(children, list):
            own = key_of(message.get("messageId"))
            stack.extend((child, own) for child in reversed(children))
    return flat


def _librechat_text(message):
    body = text(message.get("text"))
    reasoning = []
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                value = part.get("text")
                texts.append(text(value.get("value")) if isinstance(value, dict) else text(value))
            elif part.get("type") == "think":
                reasoning.append(text(part.get("think")))
        if not body.strip():
            body = "\n".join(t for t in texts if t)
    return body, "\n\n".join(r for r in reasoning if r)


def read_librechat(item):
    """LibreChat's conversation export: {conversationId, title, options, messages: [{messageId,
    parentMessageId, isCreatedByUser, sender, text|content, model, createdAt}]} (or recursive)."""
    title = _title(item, 0) if isinstance(item.get("title"), str) else "Imported from LibreChat"
    options = item.get("options") if isinstance(item.get("options"), dict) else {}
    parsed = Parsed(title=title, source="LibreChat", messages=[], model_key=text(options.get("model"))[:MAX_KEY_CHARS],
                    system_prompt=text(options.get("promptPrefix")))
    flat = _librechat_flat(item)
    if len(flat) > MAX_MESSAGES:
        raise NotAnExport(f"it has more than {MAX_MESSAGES} messages")
    nodes, kept = {}, {}
    for index, (message, tree_parent) in enumerate(flat):
        if not isinstance(message, dict):
            parsed.left_out.append((f"message {index + 1}", "is not a JSON object"))
            continue
        key = key_of(message.get("messageId"))
        if key is None or key in nodes:
            parsed.left_out.append((f"message {index + 1}", "has no usable or a repeated messageId"))
            continue
        parent = tree_parent or key_of(message.get("parentMessageId"))
        nodes[key] = None if parent == NO_PARENT else parent
        by_user = message.get("isCreatedByUser")
        if isinstance(by_user, bool):
            role = "user" if by_user else "assistant"
        else:
            role = "user" if text(message.get("sender")).lower() == "user" else ""
        if role not in ROLES:
            parsed.left_out.append((f"message {key}", "its author is unknown (no isCreatedByUser)"))
            continue
        body, reasoning = _librechat_text(message)
        if not body.strip():
            parsed.left_out.append((f"message {key}", "has no text"))
            continue
        kept[key] = Msg(key=key, parent=None, role=role, content=body, reasoning=reasoning,
                        created=timestamp(message.get("createdAt")),
                        model_key=text(message.get("model"))[:MAX_KEY_CHARS] if role == "assistant" else "")
        if message.get("files") or message.get("attachments"):
            parsed.left_out.append((f"message {key}", "its files (the export holds no file)"))
    parents = _collapse(nodes, kept)
    for key, msg in kept.items():
        msg.parent = parents[key] if parents[key] in kept else None
        parsed.messages.append(msg)
    # LibreChat shows the newest leaf; so does Lapis when no current message is named.
    parsed.created = min((m.created for m in parsed.messages if m.created), default=None)
    return parsed


# -- Open WebUI ----------------------------------------------------------------------------------


def _openwebui_text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI-style parts
        return "\n".join(text(p.get("text")) for p in value if isinstance(p, dict) and p.get("type") == "text")
    return ""


def read_open_webui(item):
    """Open WebUI's chat export item: {title, chat: {history: {messages: {id: {parentId,
    childrenIds, role, content, timestamp, model}}, currentId}}, created_at, updated_at}."""
    chat = item.get("chat")
    if not isinstance(chat, dict):
        raise NotAnExport("it has no 'chat' object")
    title = _title(item, 0) if (isinstance(item.get("title"), str) or isinstance(chat.get("title"), str)) else "Imported from Open WebUI"
    history = chat.get("history") if isinstance(chat.get("history"), dict) else None
    if history is None or not isinstance(history.get("messages"), dict):
        raise NotAnExport("it has no 'chat.history.messages' object")
    messages = history["messages"]
    if len(messages) > MAX_MESSAGES:
        raise NotAnExport(f"it has more than {MAX_MESSAGES} messages")
    params = chat.get("params") if isinstance(chat.get("params"), dict) else {}
    models = chat.get("models") if isinstance(chat.get("models"), list) else []
    parsed = Parsed(title=title, source="Open WebUI", messages=[], created=timestamp(item.get("created_at")),
                    updated=timestamp(item.get("updated_at")), system_prompt=text(params.get("system")),
                    model_key=text(models[0] if models else "")[:MAX_KEY_CHARS])
    nodes, kept = {}, {}
    for node_key, message in messages.items():
        key = key_of(node_key)
        if key is None or not isinstance(message, dict):
            parsed.left_out.append(("a message", "its id or its shape is not usable"))
            continue
        nodes[key] = key_of(message.get("parentId"))
        role = text(message.get("role"))
        if role == "system":
            body = _openwebui_text(message.get("content"))
            if body.strip() and not parsed.system_prompt:
                parsed.system_prompt = body
            continue
        if role not in ROLES:
            parsed.left_out.append((f"message {key}", f"its role {role[:40]!r} is not user or assistant"))
            continue
        body = _openwebui_text(message.get("content"))
        if not body.strip():
            parsed.left_out.append((f"message {key}", "has no text"))
            continue
        if message.get("files"):
            parsed.left_out.append((f"message {key}", "its files (the export holds no file)"))
        kept[key] = Msg(key=key, parent=None, role=role, content=body, created=timestamp(message.get("timestamp")),
                        model_key=text(message.get("model"))[:MAX_KEY_CHARS] if role == "assistant" else "")
    parents = _collapse(nodes, kept)
    for key, msg in kept.items():
        msg.parent = parents[key]
        parsed.messages.append(msg)
    parsed.current = _nearest_kept(key_of(history.get("currentId")), nodes, kept)
    return parsed


# -- Lapis ---------------------------------------------------------------------------------------

LAPIS_SETTINGS = ("title_source", "temperature", "max_output_tokens", "image_detail", "archived")


def read_lapis(item):
    """Lapis's own JSON export (``apps.transfer.exporting``): every field as it was exported."""
    if item.get("version") != 1:
        raise NotAnExport(f"Lapis export version {str(item.get('version'))[:20]!r} is not one this Lapis reads (1)")
    conversation = item.get("conversation") if isinstance(item.get("conversation"), dict) else {}
    messages = item.get("messages")
    if not isinstance(messages, list):
        raise NotAnExport("it has no 'messages' list")
    if len(messages) > MAX_MESSAGES:
        raise NotAnExport(f"it has more than {MAX_MESSAGES} messages")
    parsed = Parsed(
        title=text(conversation.get("title"))[:200], source="Lapis", messages=[],
        current=key_of(conversation.get("current_leaf_id")), created=timestamp(conversation.get("created")),
        updated=timestamp(conversation.get("updated")), model_key=text(conversation.get("model_key"))[:MAX_KEY_CHARS],
        system_prompt=text(conversation.get("system_prompt")),
        settings={name: conversation.get(name) for name in LAPIS_SETTINGS if name in conversation},
    )
    nodes, kept = {}, {}
    for index, message in enumerate(messages):
        key = key_of(message.get("id")) if isinstance(message, dict) else None
        if key is None or key in nodes:
            parsed.left_out.append((f"message {index + 1}", "has no usable or a repeated id"))
            continue
        nodes[key] = key_of(message.get("parent_id"))
        role = text(message.get("role"))
        if role not in ROLES:
            parsed.left_out.append((f"message {key}", f"its role {role[:40]!r} is not user or assistant"))
            continue
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        error = message.get("error") if isinstance(message.get("error"), dict) else {}
        attachments = message.get("attachments") if isinstance(message.get("attachments"), list) else []
        if attachments:
            parsed.left_out.append((f"message {key}", f"{len(attachments)} image(s): a JSON export references images, it does not hold them"))
        kept[key] = Msg(
            key=key, parent=None, role=role, content=text(message.get("content")),
            reasoning=text(message.get("reasoning")), created=timestamp(message.get("created")),
            model_key=text(message.get("model_key"))[:MAX_KEY_CHARS],
            extra={
                "status": text(message.get("status")), "group": text(message.get("group")),
                "deployment": text(message.get("deployment")), "finish_reason": text(message.get("finish_reason")),
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
                "reasoning_tokens": usage.get("reasoning_tokens"), "error_code": text(error.get("code")),
                "error_message": text(error.get("message")), "notice": text(message.get("notice")),
            },
        )
    parents = _collapse(nodes, kept)
    for key, msg in kept.items():
        msg.parent = parents[key]
        parsed.messages.append(msg)
    return parsed
