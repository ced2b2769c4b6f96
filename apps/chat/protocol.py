"""Every frame of the chat websocket, both directions. Version ``PROTOCOL_VERSION``.

Version 2 (media): ``send`` takes ``image`` {size?, quality?, style?} for an image model and
``edit`` takes ``attachments``; messages carry ``attachments`` (see apps.media.views.describe);
the server sends ``attachments`` frames when a picture is stored on an answer being written.

Client → server (JSON text frames, each with a literal ``type``):
  send        {conversation_id: uuid|null, client_id: str, text: str, model?: str,
               parent_id?: uuid|null, attachments?: [uuid] (own uploads, at most 10),
               image?: {size?, quality?, style?}, temporary?: bool}  (null conversation: a
               new one; ``image`` only counts when the model is an image model, as that model
               offers them; ``temporary`` only with a new one: a temporary chat, see below)
  stop        {message_id}
  regenerate  {message_id: the assistant message to answer again, client_id}
  edit        {message_id: the user message to change, text, client_id, attachments?: [uuid]}
              (a sibling branch; the original's images are kept, ``attachments`` adds uploads)
  resume      {message_id, seq: the last seq the client has}
  watch       {conversation_id}  (keep a temporary chat while this socket is open)
  ping        {}

Temporary chats (apps.chat.temporary): never listed in the sidebar, no title model; a socket
that sends into one, resumes one of its answers, or sends ``watch`` holds it, and it is deleted
(images too; usage records stay) when the last socket holding it closes.

Server → client:
  message.created       {conversation_id, message}
  delta                 {message_id, seq, text, reasoning?}  (seq counts frames: 1, 2, 3, ...;
                        ``reasoning``: more of the reasoning summary, Responses API models)
  snapshot              {message_id, seq, text, status, reasoning?}  (answer to resume; deltas follow)
  done                  {message_id, status, seq, finish_reason, usage, error?, notice?}
                        (``usage``: {prompt_tokens, completion_tokens, estimated,
                        reasoning_tokens?, cost?, currency?, cost_display?} or null; ``cost``
                        a decimal string at the model's price when it was written, absent
                        for a model without a known price; ``estimated``: counted by Lapis
                        because Azure sent no usage)
  error                 {code, message, retry_after?, message_id?, detail?}
                        (code ``rate_limited``: {limit, retry_after} too, see ``rate_limited``)
  title                 {conversation_id, title}
  attachments           {message_id, attachments: [describe]}  (a picture stored on an answer)
  retrying              {message_id, seconds, status, attempt, message}  (Azure asked to wait
                        before the first text: the request goes again after ``seconds``)
  conversation.updated  {conversation}
  pong                  {version}
Anything else gets an ``error`` frame with code ``bad_frame``, never an exception.

Following answers: every socket of the user gets ``message.created`` (and ``conversation.updated``)
of a new answer, whichever socket started it; only the starting socket gets its deltas and
``done`` unasked. Another socket that shows the conversation sends ``resume`` to follow it live
(snapshot, then deltas, then ``done``); ``stop`` works from any socket of the owner. The channel
layer may drop frames, the last deltas and ``done`` included, so a client that hears nothing of
a streaming answer for a while (the page: setting CHAT_STREAM_SILENCE) sends ``resume`` too: the
answer's process, or the database once it is final, answers it.
"""

import json
import uuid
from dataclasses import MISSING, dataclass, field, fields

from project.limits import unstorable_reason

PROTOCOL_VERSION = 2
MAX_FRAME_BYTES = 256 * 1024
MAX_TEXT_CHARS = 100_000
MAX_CLIENT_ID_CHARS = 64
MAX_ATTACHMENTS = 10
IMAGE_OPTIONS = ("size", "quality", "style")
RATE_LIMITED = "rate_limited"


class ProtocolError(Exception):
    """A frame the server will not act on; ``code`` and ``message`` go back to the client."""

    def __init__(self, message, *, code="bad_frame"):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Send:
    type = "send"
    client_id: str
    text: str
    conversation_id: uuid.UUID | None = None
    model: str | None = None
    parent_id: uuid.UUID | None = None
    attachments: list = field(default_factory=list)
    image: dict | None = None
    temporary: bool = False


@dataclass(frozen=True)
class Stop:
    type = "stop"
    message_id: uuid.UUID


@dataclass(frozen=True)
class Regenerate:
    type = "regenerate"
    message_id: uuid.UUID
    client_id: str


@dataclass(frozen=True)
class Edit:
    type = "edit"
    message_id: uuid.UUID
    text: str
    client_id: str
    attachments: list = field(default_factory=list)


@dataclass(frozen=True)
class Resume:
    type = "resume"
    message_id: uuid.UUID
    seq: int = 0


@dataclass(frozen=True)
class Ping:
    type = "ping"


@dataclass(frozen=True)
class Watch:
    type = "watch"
    conversation_id: uuid.UUID


CLIENT_FRAMES = {frame.type: frame for frame in (Send, Stop, Regenerate, Edit, Resume, Ping, Watch)}


def _coerce(frame_type, name, annotation, value):
    """Check one field against its annotation; return the value in its Python type."""
    optional = "None" in str(annotation)
    if value is None:
        if optional:
            return None
        raise ProtocolError(f"{frame_type}.{name} is required")
    if "UUID" in str(annotation):
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise ProtocolError(f"{frame_type}.{name} must be an id, not {value!r:.40}") from None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{frame_type}.{name} must be true or false")
        return value
    if annotation is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"{frame_type}.{name} must be a non-negative integer")
        return value
    if "dict" in str(annotation):
        return _image_options(frame_type, name, value)
    if annotation is list:
        if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
            raise ProtocolError(f"{frame_type}.{name} must be a list of at most {MAX_ATTACHMENTS} ids")
        return [_coerce(frame_type, name, "UUID", item) for item in value]
    if not isinstance(value, str):
        raise ProtocolError(f"{frame_type}.{name} must be a string")
    if reason := unstorable_reason(value):
        raise ProtocolError(f"{frame_type}.{name} {reason}")
    if name == "client_id" and not 0 < len(value) <= MAX_CLIENT_ID_CHARS:
        raise ProtocolError(f"{frame_type}.client_id must be 1 to {MAX_CLIENT_ID_CHARS} characters")
    if name == "text" and len(value) > MAX_TEXT_CHARS:
        raise ProtocolError(f"{frame_type}.text is longer than {MAX_TEXT_CHARS} characters")
    return value


def _image_options(frame_type, name, value):
    if not isinstance(value, dict):
        raise ProtocolError(f"{frame_type}.{name} must be an object like {{\"size\": \"1024x1024\"}}")
    unknown = set(value) - set(IMAGE_OPTIONS)
    if unknown:
        raise ProtocolError(f"{frame_type}.{name} has unknown fields: {', '.join(sorted(unknown))[:80]}")
    for key, item in value.items():
        if item is not None and (not isinstance(item, str) or len(item) > 20):
            raise ProtocolError(f"{frame_type}.{name}.{key} must be a short string")
    return {key: item for key, item in value.items() if item}


def parse_client_frame(text):
    """Parse one websocket text frame into a frame dataclass, or raise ProtocolError."""
    if text is None:
        raise ProtocolError("binary frames are not accepted; send JSON text")
    if len(text.encode()) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame larger than {MAX_FRAME_BYTES} bytes", code="frame_too_large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("frame must be a JSON object")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise ProtocolError("frame.type must be a string naming the frame")
    frame_class = CLIENT_FRAMES.get(frame_type)
    if frame_class is None:
        raise ProtocolError(f"unknown frame type {frame_type[:40]!r}")
    known = {f.name: f for f in fields(frame_class)}
    unknown = set(data) - set(known) - {"type"}
    if unknown:
        raise ProtocolError(f"{frame_class.type} has unknown fields: {', '.join(sorted(unknown))[:80]}")
    values = {}
    for name, spec in known.items():
        if name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ProtocolError(f"{frame_class.type}.{name} is required")
            continue
        values[name] = _coerce(frame_class.type, name, spec.type, data[name])
    if isinstance(values.get("text"), str) and frame_class in (Send, Edit):
        if not values["text"].strip() and not values.get("attachments"):
            raise ProtocolError(f"{frame_class.type}.text is empty", code="empty_message")
    return frame_class(**values)


# Server → client frames. Each returns the dict sent as JSON.


def message_created(*, conversation_id, message):
    return {"type": "message.created", "conversation_id": str(conversation_id), "message": message}


def delta(*, message_id, seq, text, reasoning=""):
    frame = {"type": "delta", "message_id": str(message_id), "seq": seq, "text": text}
    if reasoning:
        frame["reasoning"] = reasoning
    return frame


def snapshot(*, message_id, seq, text, status, reasoning=""):
    frame = {"type": "snapshot", "message_id": str(message_id), "seq": seq, "text": text, "status": status}
    if reasoning:
        frame["reasoning"] = reasoning
    return frame


def done(*, message_id, status, seq, finish_reason="", usage=None, error=None, notice=""):
    frame = {
        "type": "done",
        "message_id": str(message_id),
        "status": status,
        "seq": seq,
        "finish_reason": finish_reason,
        "usage": usage,
    }
    if error:
        frame["error"] = error
    if notice:
        frame["notice"] = notice
    return frame


def error(*, code, message, retry_after=None, message_id=None, detail=None):
    frame = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if message_id is not None:
        frame["message_id"] = str(message_id)
    if detail:
        frame["detail"] = detail
    return frame


def rate_limited(*, message, retry_after, limit):
    """An ``error`` frame refusing an answer or a socket over a user's rate limit: ``limit`` is
    ``answers_per_minute``, ``answers_at_once`` or ``sockets``; ``retry_after`` is in seconds.
    A refused socket then closes with code 4429 (apps.governance.ratelimits.SOCKET_CLOSE_CODE)."""
    frame = error(code=RATE_LIMITED, message=message, retry_after=retry_after)
    frame["limit"] = limit
    return frame


def title(*, conversation_id, title):
    return {"type": "title", "conversation_id": str(conversation_id), "title": title}


def attachments(*, message_id, attachments):
    return {"type": "attachments", "message_id": str(message_id), "attachments": attachments}


def retrying(*, message_id, seconds, status, attempt, message):
    return {
        "type": "retrying",
        "message_id": str(message_id),
        "seconds": seconds,
        "status": status,
        "attempt": attempt,
        "message": message,
    }


def conversation_updated(*, conversation):
    return {"type": "conversation.updated", "conversation": conversation}


def pong():
    return {"type": "pong", "version": PROTOCOL_VERSION}
