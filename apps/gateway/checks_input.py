"""The caller's request body, checked before anything is sent: each problem is a 400 that says
what is wrong and where (``param``), as OpenAI's answers do."""

import json

from apps.gateway.errors import ApiError
from project.limits import first_unstorable

MAX_MESSAGES = 2048  # Azure's limits (azure-wire.md): refused here rather than there
MAX_TOOLS = 128
MAX_IMAGES = 10
MAX_INPUTS = 2048  # embeddings: inputs per request


def _bad(message, param=None, code="invalid_value"):
    return ApiError(400, message, code=code, param=param)


def json_body(request):
    """The request's JSON object. Read from the stream, not ``request.body``: the server has
    already bounded the body (project.bodies: API_REQUEST_MAX_BYTES), and Django's 1 MB form cap
    is for forms, not for a chat with images."""
    if request.content_type != "application/json":
        raise _bad(f"The body must be JSON (Content-Type: application/json), not {request.content_type or 'nothing'}.",
                   code="invalid_content_type")
    try:
        data = json.loads(request.read())
    except ValueError as exc:
        raise _bad(f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise _bad("The body must be a JSON object.", code="invalid_json")
    if found := first_unstorable(data):
        # Usage rows and logs must hold what the caller sent; PostgreSQL refuses NUL.
        raise _bad(f"{found[0]} {found[1]}.", param=found[0])
    return data


def chat_request(body, *, spec):
    """Check a chat body for ``spec``; return whether it asks for a stream."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of messages.", "messages")
    if len(messages) > MAX_MESSAGES:
        raise _bad(f"'messages' has {len(messages)} messages; at most {MAX_MESSAGES}.", "messages")
    images = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad(f"{where} must be an object with a 'role'.", where)
        content = message.get("content")
        if isinstance(content, list):
            for number, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _bad(f"{where}.content[{number}] must be an object with a 'type'.",
                               f"{where}.content[{number}]")
                if part["type"] == "image_url":
                    images += 1
                    url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                    if not isinstance(url, str) or not url:
                        raise _bad(f"{where}.content[{number}].image_url.url is missing.",
                                   f"{where}.content[{number}].image_url")
        elif content is not None and not isinstance(content, str):
            raise _bad(f"{where}.content must be a string or a list of parts.", f"{where}.content")
    if images and not spec.vision:
        raise _bad(f"The model {spec.key!r} does not take images; send text only or pick a model "
                   "that sees images.", "messages", code="images_not_supported")
    if images > MAX_IMAGES:
        raise _bad(f"The request has {images} images; at most {MAX_IMAGES}.", "messages")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or len(tools) > MAX_TOOLS):
        raise _bad(f"'tools' must be a list of at most {MAX_TOOLS} tools.", "tools")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be true or false.", "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object.", "stream_options")
        if not stream:
            raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       "stream_options")
    if body.get("n") not in (None, 1):
        raise _bad("Lapis answers one choice per request: 'n' must be 1.", "n")
    return bool(stream)


def embeddings_request(body):
    """Check an embeddings body; return its inputs as texts (token arrays as ``""``, for the
    estimate when Azure sends no usage)."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _bad("'input' must be a string or a non-empty list of strings or token arrays.", "input")
    if items and all(isinstance(item, int) for item in items):
        items = [items]  # one token array
    if len(items) > MAX_INPUTS:
        raise _bad(f"'input' has {len(items)} items; at most {MAX_INPUTS} per request.", "input")
    texts = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise _bad(f"input[{index}] is empty; every input must have text.", f"input[{index}]")
            texts.append(item)
        elif isinstance(item, list) and item and all(isinstance(t, int) and t >= 0 for t in item):
            texts.append("")
        else:
            raise _bad(f"input[{index}] must be a string or a list of token ids.", f"input[{index}]")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise _bad("'dimensions' must be a positive integer.", "dimensions")
    return texts


MAX_SPEECH_INPUT = 4096  # characters (Azure's TTS limit)
AUDIO_MAX_BYTES = 25 * 1024 * 1024  # Whisper's file limit
TRANSCRIPTION_FIELDS = ("model", "language", "prompt", "response_format", "temperature")


def speech_request(body):
    """Check a speech body; return its ``input``."""
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise _bad("'input' must be the text to speak.", "input")
    if len(text) > MAX_SPEECH_INPUT:
        raise _bad(f"'input' has {len(text):,} characters; at most {MAX_SPEECH_INPUT:,}.", "input")
    if not isinstance(body.get("voice"), str):
        raise _bad("'voice' is required (e.g. 'alloy').", "voice")
    return text


def transcription_request(request):
    """({field: text}, ("file", name, bytes, content type)) of a multipart transcription request
    (sync: Django parses the form). Unknown fields are refused, not dropped silently."""
    if not request.content_type.startswith("multipart/form-data"):
        raise _bad("The body must be multipart/form-data with the audio as 'file'.",
                   code="invalid_content_type")
    try:
        form, files = request.POST, request.FILES
    except Exception as exc:  # a malformed multipart body
        raise _bad(f"The multipart body could not be read: {exc}.", code="invalid_multipart") from None
    upload = files.get("file")
    if upload is None:
        raise _bad("'file' is required: the audio to transcribe.", "file")
    if upload.size > AUDIO_MAX_BYTES:
        raise _bad(f"'file' is {upload.size:,} bytes; at most {AUDIO_MAX_BYTES:,}.", "file")
    unknown = sorted(set(form) - set(TRANSCRIPTION_FIELDS) - {"timestamp_granularities[]"})
    if unknown:
        raise _bad(f"Unknown field(s) {', '.join(unknown)}; Lapis passes on "
                   f"{', '.join(TRANSCRIPTION_FIELDS)}.", unknown[0])
    fields = {name: form[name] for name in TRANSCRIPTION_FIELDS if name in form}
    if fields.get("response_format") not in (None, "json", "text", "srt", "verbose_json", "vtt"):
        raise _bad("'response_format' must be json, text, srt, verbose_json or vtt.", "response_format")
    return fields, ("file", upload.name or "audio", upload.read(), upload.content_type or "application/octet-stream")
