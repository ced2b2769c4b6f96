"""The SSE decoder on the line endings, splits and shapes real servers produce."""

import pytest

from apps.azure.sse import DONE, SSEDecoder

STREAM = (
    b": keep-alive comment\n"
    b"data: {\"a\":1}\n\n"
    b"event: foo\ndata: {\"b\":2}\n\n"
    b"data: line one\ndata: line two\n\n"
    b"id: 7\nretry: 100\ndata: {\"c\":3}\n\n"
    b"[DONE]\n\n"
)
EXPECTED = [(None, b'{"a":1}'), ("foo", b'{"b":2}'), (None, b"line one\nline two"), (None, b'{"c":3}'), (None, DONE)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_any_line_ending_and_any_split_gives_the_same_events(newline, size):
    data = STREAM.replace(b"\n", newline)
    decoder = SSEDecoder()
    events = []
    for start in range(0, len(data), size):
        events += decoder.feed(data[start : start + size])
    last, partial = decoder.finish()
    assert events + last == EXPECTED and not partial


def test_an_event_without_its_blank_line_is_kept_and_a_cut_line_is_partial():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}\n') == []
    assert decoder.finish() == ([(None, b'{"a":1}')], False)
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a":1}\n\ndata: {"cho')
    assert decoder.finish() == ([(None, b'{"cho')], True)
