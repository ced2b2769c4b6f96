"""Reading Prometheus text as Prometheus does (prometheus-client's own parser)."""

from prometheus_client.parser import text_string_to_metric_families

# The chat tests' fixtures: signed-in sockets on the real ASGI app, the simulator's config.
from tests.chat.conftest import (  # noqa: F401
    _fresh_channel_layer,
    chat_config,
    open_socket,
    user_a,
)

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def samples(text):
    """{(sample name, frozenset of label items): value} of a /metrics body."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def value(parsed, name, **labels):
    """The sample ``name`` with exactly ``labels`` (0 when absent: a counter not yet counted)."""
    return parsed.get((name, frozenset(labels.items())), 0.0)


def total(parsed, name, **labels):
    """Sum of the samples ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, items), v in parsed.items() if n == name and wanted <= set(items))
