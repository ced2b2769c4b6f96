"""Embeddings as Azure answers ``POST /openai/deployments/{d}/embeddings`` (azure-wire.md).

Vectors are deterministic and meaningful enough to test with: the sum of one pseudo-random unit
vector per word (seeded by the word), normalised, so texts sharing words are close (cosine) and
the same text always gets the same vector. ``dimensions`` shortens and renormalises, as
text-embedding-3 does; ada-002 refuses it. ``encoding_format: base64`` sends little-endian
float32 bytes in base64 (what the openai SDK asks for by default and decodes).
"""

import base64
import functools
import math
import random
import re
import struct

from . import wire

MAX_INPUTS = 2048
MAX_TOKENS = 8192
WORD = re.compile(r"\w+", re.UNICODE)


def native_dimensions(model):
    return 3072 if "large" in model else 1536


@functools.lru_cache(maxsize=4096)
def _word_vector(word, dims):
    rng = random.Random(f"{dims}:{word}")
    return [rng.gauss(0.0, 1.0) for _ in range(dims)]


def vector(text, dims):
    """The unit vector of ``text`` (a string, or a list of token ids) in ``dims`` dimensions."""
    words = [str(t) for t in text] if isinstance(text, list) else WORD.findall(text.lower()) or [text]
    total = [0.0] * dims
    for word in words:
        for i, value in enumerate(_word_vector(word, dims)):
            total[i] += value
    norm = math.sqrt(sum(v * v for v in total)) or 1.0
    return [v / norm for v in total]


def _inputs(body):
    value = body.get("input")
    if value is None:
        return None, wire.invalid_request("'input' is a required property", param=None)
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list) and items and all(isinstance(i, int) for i in items):
        items = [items]
    if not isinstance(items, list) or not items or any(
        not (isinstance(i, str) and i) and not (isinstance(i, list) and i and all(isinstance(t, int) for t in i))
        for i in items
    ):
        return None, wire.invalid_request(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
    if len(items) > MAX_INPUTS:
        return None, wire.invalid_request(
            f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We hope to increase the "
            "number of inputs per request soon. Please contact us through an Azure support request "
            "at: https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.")
    return items, None


def answer(body, deployment, count_text):
    """(status, body) for an embeddings request ``body`` to ``deployment``."""
    items, problem = _inputs(body)
    if problem:
        return problem
    native = native_dimensions(deployment.model)
    dims = body.get("dimensions")
    if dims is not None:
        if "ada-002" in deployment.model:
            return wire.invalid_request("This model does not support specifying dimensions.")
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= native:
            return wire.invalid_request(
                f"The requested dimensions must be between 1 and {native}.", param="dimensions")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        return wire.invalid_request(
            f"'{fmt}' is not one of ['float', 'base64'] - 'encoding_format'", param="encoding_format")
    data, tokens = [], 0
    for index, item in enumerate(items):
        used = len(item) if isinstance(item, list) else count_text(item)
        if used > MAX_TOKENS:
            return wire.invalid_request(
                f"This model's maximum context length is {MAX_TOKENS} tokens, however you requested "
                f"{used} tokens ({used} in your prompt; 0 for the completion). Please reduce your "
                "prompt; or completion length.")
        tokens += used
        values = vector(item, native)
        if dims is not None and dims < native:
            values = values[:dims]
            norm = math.sqrt(sum(v * v for v in values)) or 1.0
            values = [v / norm for v in values]
        if fmt == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        else:
            data.append({"object": "embedding", "index": index, "embedding": values})
    model = deployment.model.rsplit("-", 1)[0] if deployment.model[-1:].isdigit() else deployment.model
    return 200, {"object": "list", "data": data, "model": model,
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
