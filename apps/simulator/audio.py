"""Speech and transcription as Azure answers them (Whisper and TTS deployments).

- ``POST /openai/deployments/{d}/audio/speech``: JSON ``input`` (≤ 4,096 characters), ``voice``,
  ``response_format`` (mp3 by default, opus, aac, flac, wav, pcm), ``speed`` (0.25–4). The
  answer is real audio: 24 kHz 16-bit mono, one short tone per word; ``pcm`` is the raw samples,
  every other format a WAV file (the simulator encodes no mp3/opus/aac/flac; the content type is
  Azure's for the format asked). The text rides along in the WAV's ``LIST/INFO/ICMT`` chunk, so
  transcribing the simulator's own speech gives the text back.
- ``POST /openai/deployments/{d}/audio/transcriptions``: multipart ``file`` (≤ 25 MB), ``language``,
  ``prompt``, ``response_format`` (json, text, srt, verbose_json, vtt), ``temperature``.
"""

import email.parser
import email.policy
import io
import math
import re
import struct
import wave

from . import wire

RATE = 24000
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")
FORMATS = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
           "wav": "audio/wav", "pcm": "audio/pcm"}
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
MAX_FILE = 25 * 1024 * 1024
MAX_INPUT = 4096


def _samples(text, speed):
    words = re.findall(r"\S+", text) or [text]
    frames = bytearray()
    for index, word in enumerate(words):
        pitch = 220 + 40 * (sum(map(ord, word)) % 12)
        length = int(RATE * 0.18 / speed)
        for n in range(length):
            frames += struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * n / RATE)))
        frames += b"\x00\x00" * int(RATE * 0.05 / speed)
        del index
    return bytes(frames)


def _wav(samples, text):
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(samples)
    data = bytearray(out.getvalue())
    comment = text.encode() + b"\x00"
    if len(comment) % 2:
        comment += b"\x00"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    data += b"LIST" + struct.pack("<I", len(info)) + info
    data[4:8] = struct.pack("<I", len(data) - 8)
    return bytes(data)


def speech(body):
    """(status, body bytes or error dict, content type)."""
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        return (*wire.invalid_request("'input' is a required property", param="input"), None)
    if len(text) > MAX_INPUT:
        return (*wire.invalid_request(
            f"'{text[:20]}...' is too long - 'input' (at most {MAX_INPUT} characters)", param="input"), None)
    voice = body.get("voice")
    if voice not in VOICES:
        return (*wire.invalid_request(f"'{voice}' is not one of {list(VOICES)} - 'voice'", param="voice"), None)
    fmt = body.get("response_format") or "mp3"
    if fmt not in FORMATS:
        return (*wire.invalid_request(f"'{fmt}' is not one of {list(FORMATS)} - 'response_format'",
                                      param="response_format"), None)
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return (*wire.invalid_request(f"{speed} is not between 0.25 and 4.0 - 'speed'", param="speed"), None)
    samples = _samples(text, speed)
    return 200, samples if fmt == "pcm" else _wav(samples, text), FORMATS[fmt]


def _form(content_type, body):
    """{name: (filename or None, bytes)} of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def _spoken_text(data):
    """The text of a WAV made by ``speech`` (its LIST/INFO/ICMT chunk), else None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        if kind == b"LIST" and body[:4] == b"INFO":
            inner = 4
            while inner + 8 <= len(body):
                name, length = body[inner:inner + 4], struct.unpack("<I", body[inner + 4:inner + 8])[0]
                if name == b"ICMT":
                    return body[inner + 8:inner + 8 + length].split(b"\x00", 1)[0].decode("utf-8", "replace")
                inner += 8 + length + (length % 2)
        offset += 8 + size + (size % 2)
    return None


def _duration(data):
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError, struct.error):
        return len(data) / 16000  # an mp3 of about 128 kbit/s


def _clock(seconds, sep):
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02}:{int(minutes):02}:{int(secs):02}{sep}{int((secs % 1) * 1000):03}"


def transcription(content_type, body):
    """(status, body (dict or text), content type)."""
    if not content_type.startswith("multipart/form-data"):
        return (*wire.invalid_request("Content-Type must be multipart/form-data."), None)
    fields = _form(content_type, body)
    if "file" not in fields or not fields["file"][1]:
        return (*wire.invalid_request("'file' is a required property", param="file"), None)
    data = fields["file"][1]
    if len(data) > MAX_FILE:
        return (*wire.invalid_request(f"Maximum content size limit ({MAX_FILE}) exceeded ({len(data)} bytes read)"), None)
    fmt = (fields.get("response_format") or (None, b"json"))[1].decode() or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        return (*wire.invalid_request(f"'{fmt}' is not one of {list(TRANSCRIPT_FORMATS)} - 'response_format'",
                                      param="response_format"), None)
    duration = round(_duration(data), 2)
    text = _spoken_text(data) or f"Simulated transcription of {duration:g} seconds of audio."
    language = (fields.get("language") or (None, b"en"))[1].decode() or "en"
    if fmt == "json":
        return 200, {"text": text}, "application/json"
    if fmt == "text":
        return 200, text + "\n", "text/plain; charset=utf-8"
    if fmt == "verbose_json":
        return 200, {"task": "transcribe", "language": {"en": "english"}.get(language, language),
                     "duration": duration, "text": text,
                     "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": " " + text,
                                   "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                                   "compression_ratio": 1.0, "no_speech_prob": 0.01}]}, "application/json"
    sep = "," if fmt == "srt" else "."
    cue = f"{_clock(0, sep)} --> {_clock(duration, sep)}\n{text}\n"
    return 200, ("1\n" + cue + "\n") if fmt == "srt" else ("WEBVTT\n\n" + cue + "\n"), "text/plain; charset=utf-8"
