"""The simulator's reply language: ``[sim:...]`` markers and deterministic replies.

Markers live in the last user message (for the completions route: in the prompt); several may be
combined. ``parse_markers(text) -> list[Marker]`` finds them, ``strip_markers(text)`` removes them,
and ``reply_text(...)`` builds the deterministic answer a request gets. Nothing here does I/O.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-z0-9_]+")
_SENTENCES = (
    "Every team should keep its models close to its data.",
    "Measure what you ship before you add a second region.",
    "Short answers are easier to read and easier to test.",
    "A stream of small chunks lets people read along as the text arrives.",
    "Stopping early is fine when you have seen enough of the answer.",
    "Quotas are shared by every deployment in a resource.",
    "Retries help with brief errors but never with a bad request.",
    "The content filter checks the prompt first and the answer as it is written.",
    "Tokens, not words, decide how much fits in the context window.",
    "Keys belong in the environment and never in a page or a log line.",
    "A clear error message says what went wrong and where.",
    "Good defaults make the first run pleasant.",
)
_TOPICS = (
    "latency", "tokens", "filters", "deployments", "quotas", "regions", "streams", "prompts",
    "retries", "budgets", "images", "keys",
)


@dataclass
class Marker:
    name: str
    args: dict = field(default_factory=dict)
    text: str = ""  # the marker as written, the key of its times=K counter

    def int_arg(self, key, default=None):
        try:
            return int(float(self.args[key]))
        except (KeyError, TypeError, ValueError):
            return default

    def float_arg(self, key, default=None):
        try:
            return float(self.args[key])
        except (KeyError, TypeError, ValueError):
            return default


def _scan_marker(text, start):
    """Parse one marker beginning at ``text[start]`` == '['; return (Marker, end) or None."""
    pos = start + len("[sim:")
    match = _NAME.match(text, pos)
    if not match:
        return None
    name, pos, args = match.group(), match.end(), {}
    decoder = json.JSONDecoder()
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\n":
            pos += 1
        if pos >= len(text):
            return None
        if text[pos] == "]":
            return Marker(name=name, args=args, text=text[start : pos + 1]), pos + 1
        key_match = re.compile(r"([a-z_]+)=").match(text, pos)
        if key_match:
            key, pos = key_match.group(1), key_match.end()
        else:
            key = "n"  # a bare value, as in [sim:words 200]
        if pos < len(text) and text[pos] in "{[\"":
            try:
                value, pos = decoder.raw_decode(text, pos)
            except ValueError:
                return None
        else:
            value_match = re.compile(r"[^\s\]]*").match(text, pos)
            value, pos = value_match.group(), value_match.end()
        args[key] = value
    return None


def _iter_markers(text):
    pos = 0
    while True:
        start = text.find("[sim:", pos)
        if start < 0:
            return
        parsed = _scan_marker(text, start)
        if parsed is None:
            pos = start + 1
            continue
        marker, end = parsed
        yield marker, start, end
        pos = end


def parse_markers(text):
    return [marker for marker, _, _ in _iter_markers(text or "")]


def strip_markers(text):
    """``text`` without its markers; the rest is kept verbatim apart from outer whitespace."""
    text = text or ""
    pieces, pos = [], 0
    for _, start, end in _iter_markers(text):
        before = text[pos:start]
        # "a [sim:x] b" becomes "a b": one of the two spaces around a marker goes with it
        if before.endswith((" ", "\t")) and (end == len(text) or text[end] in " \t\n"):
            before = before[:-1]
        pieces.append(before)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces).strip()


def find(markers, name):
    for marker in markers:
        if marker.name == name:
            return marker
    return None


def _seed(*parts):
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "big")


def filler(n_tokens, seed):
    """About ``n_tokens`` tokens of plain prose (whole sentences, cut to size), deterministic."""
    words, i = [], seed % len(_SENTENCES)
    step = 1 + (seed >> 8) % (len(_SENTENCES) - 1)
    # Most words here are one token and every sentence ends in a one-token full stop.
    while len(words) < max(1, n_tokens):
        words.extend(_SENTENCES[i % len(_SENTENCES)].split())
        i += step
    words = words[: max(1, n_tokens)]
    text = " ".join(words)
    return text if text.endswith(".") else text.rstrip(",") + "."


def default_answer(prompt_text, tokens=40):
    """The no-marker answer: depends on the prompt, about ``tokens`` tokens, markdown prose."""
    seed = _seed(prompt_text)
    topic = _TOPICS[seed % len(_TOPICS)]
    return f"Here is a short note on **{topic}**. " + filler(max(1, tokens - 8), seed)


def markdown_answer(seed_text):
    seed = _seed(seed_text)
    return (
        "## A simulated answer\n\n"
        f"{filler(12, seed)}\n\n"
        "- first point about the request\n"
        "- second point, with `inline code`\n"
        "- third point\n\n"
        "```python\n"
        "def greet(name):\n"
        '    return f"Hello, {name}!"\n'
        "```\n"
    )


def short_title(text, words=5):
    cleaned = re.sub(r"[^\w\s'-]", " ", strip_markers(text or ""))
    picked = cleaned.split()[:words]
    return " ".join(picked).strip().title() or "New Chat"
