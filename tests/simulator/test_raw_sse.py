"""The bytes on the wire, compared with the example stream in azure-wire.md field for field."""

import json

import httpx2

EXAMPLE = """\
data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1736407895,"id":"chatcmpl-X","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi"},"finish_reason":null,"index":0,"logprobs":null}],"created":1736407895,"id":"chatcmpl-X","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1736407895,"id":"chatcmpl-X","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[],"created":1736407895,"id":"chatcmpl-X","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":{"completion_tokens":1,"prompt_tokens":9,"total_tokens":10}}

data: [DONE]

"""
# Values that differ per response by nature; every other field must be identical.
VOLATILE = {"created", "id", "system_fingerprint", "completion_tokens", "prompt_tokens", "total_tokens"}


def events(raw):
    assert raw.endswith("\n\n") and "\r" not in raw
    return [block for block in raw.split("\n\n") if block]


def normalise(value, key=None):
    """The JSON with volatile scalars replaced by their type, keeping key order."""
    if isinstance(value, dict):
        return [(k, normalise(v, k)) for k, v in value.items()]
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if key in VOLATILE and value not in ("", 0):
        return type(value).__name__
    return value


def post_stream(sim, body):
    url = f"{sim.url}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    with httpx2.Client() as client:
        response = client.post(url, json=body, headers={"api-key": sim.api_key})
    return response


def test_stream_matches_the_documented_example(azure_simulator):
    response = post_stream(azure_simulator, {
        "messages": [{"role": "user", "content": "[sim:echo] Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["apim-request-id"]
    got, want = events(response.text), events(EXAMPLE)
    assert len(got) == len(want)
    for got_event, want_event in zip(got, want, strict=True):
        assert got_event.startswith("data: ") and "\n" not in got_event
        if want_event == "data: [DONE]":
            assert got_event == want_event
            continue
        got_json, want_json = json.loads(got_event[6:]), json.loads(want_event[6:])
        assert normalise(got_json) == normalise(want_json)
        # compact separators, as Azure sends them
        assert got_event[6:] == json.dumps(got_json, separators=(",", ":"), ensure_ascii=False)
    ids = {json.loads(e[6:])["id"] for e in got[1:-1]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")


def test_async_filter_annotations_have_no_delta(azure_simulator):
    response = post_stream(azure_simulator, {
        "messages": [{"role": "user", "content": "[sim:async_filter] [sim:words 30]"}],
        "stream": True,
    })
    chunks = [json.loads(e[6:]) for e in events(response.text)[:-1]]
    finish_at = next(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"])
    annotations = [i for i, c in enumerate(chunks)
                   if c["choices"] and "delta" not in c["choices"][0]]
    assert len(annotations) >= 2 and annotations[-1] > finish_at
    offsets = chunks[annotations[0]]["choices"][0]["content_filter_offsets"]
    assert offsets["start_offset"] == 0 and offsets["end_offset"] > 0
    assert all("usage" not in c for c in chunks)  # not asked for
