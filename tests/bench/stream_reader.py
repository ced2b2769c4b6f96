"""CPU per upstream chunk of reading an Azure chat stream: raw httpx2, the openai SDK, Lapis.

Run:  .venv/bin/python -m tests.bench.stream_reader [--streams 20] [--words 600] [--chunk-ms 10]
      [--rounds 3] [--url http://127.0.0.1:PORT --key KEY]  (without --url a simulator is started)

The upstream is the simulator in its own process, pacing chunks like Azure (one SSE event per
network read, ``--chunk-ms`` apart), so only the reader's CPU is counted here: process CPU time
(user + system) of this process while ``--streams`` answers are read at once, divided by the
SSE events the upstream sent. Three readers, interleaved over ``--rounds`` rounds, medians:

- raw:   httpx2 ``client.stream`` + ``aiter_bytes`` (the HTTP read path alone, nothing decoded);
- sdk:   ``AsyncAzureOpenAI.chat.completions.create(stream=True)``, each chunk's delta read;
- lapis: ``apps.azure.client.stream_chat`` (aiohttp, SSE decoding, JSON, events), as generation
         uses it;
- aiohttp: aiohttp's ``content.readany()`` alone, for scale (the read path under Lapis's reader).

Prints figures, asserts nothing (not collected by pytest).
"""

import argparse
import asyncio
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("LAPIS_TIKTOKEN_DOWNLOAD", "0")
django.setup()

import aiohttp  # noqa: E402
import httpx2  # noqa: E402
from openai import AsyncAzureOpenAI  # noqa: E402

from apps.azure.client import aclose_clients, stream_chat  # noqa: E402
from apps.azure.config import parse_config  # noqa: E402
from apps.azure.registry import Registry  # noqa: E402
from tests.simulator_fixture import CHAT_VERSION, SimulatorProcess  # noqa: E402

DEPLOYMENT = "gpt-4o-mini"


def prompt(words, chunk_ms, index):
    return [{"role": "user", "content": f"[sim:words {words}] [sim:delay ttft=20 chunk={chunk_ms}] bench {index}"}]


async def read_raw(url, key, messages, http):
    endpoint = f"{url}/openai/deployments/{DEPLOYMENT}/chat/completions"
    body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    events = 0
    async with http.stream("POST", endpoint, params={"api-version": CHAT_VERSION}, json=body,
                           headers={"api-key": key}) as response:
        async for data in response.aiter_bytes():
            events += data.count(b"data:")
    return events


async def read_aiohttp(url, key, messages, session):
    endpoint = f"{url}/openai/deployments/{DEPLOYMENT}/chat/completions"
    body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    events = 0
    async with session.post(endpoint, params={"api-version": CHAT_VERSION}, json=body,
                            headers={"api-key": key}) as response:
        while data := await response.content.readany():
            events += data.count(b"data:")
    return events


async def read_sdk(client, messages):
    stream = await client.chat.completions.create(
        model=DEPLOYMENT, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    text = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                text.append(choice.delta.content)
    return len(text)


async def read_lapis(spec, messages):
    count = 0
    async for _event in stream_chat(spec, messages, idle_timeout=60):
        count += 1
    return count


async def measure(name, make_reads):
    """CPU seconds and wall seconds of running the reads at once."""
    reads = make_reads()
    wall, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*reads)
    return time.process_time() - cpu, time.perf_counter() - wall, results


async def main(args):
    simulator = None
    url, key = args.url, args.key
    if not url:
        simulator = SimulatorProcess().start()
        url, key = simulator.url, simulator.api_key
    try:
        await run(args, url, key)
    finally:
        if simulator:
            simulator.stop()


async def run(args, url, key):
    config = (
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: bench\n"
        f"        apiKey: {key}\n        endpoint: {url}\n        version: \"{CHAT_VERSION}\"\n"
        f"        deploymentName: {DEPLOYMENT}\n"
        f"        models:\n          {DEPLOYMENT}: true\n"
    )
    result = parse_config(config, environ={"CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1"})
    assert not result.errors, result.errors
    spec = Registry(result.config).get(DEPLOYMENT)
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=200)
    http = httpx2.AsyncClient(limits=limits, timeout=60)
    sdk = AsyncAzureOpenAI(azure_endpoint=url, api_key=key, api_version=CHAT_VERSION,
                           http_client=httpx2.AsyncClient(limits=limits, timeout=60))
    session = aiohttp.ClientSession()
    messages = [prompt(args.words, args.chunk_ms, i) for i in range(args.streams)]
    readers = {
        "raw": lambda: [read_raw(url, key, m, http) for m in messages],
        "sdk": lambda: [read_sdk(sdk, m) for m in messages],
        "lapis": lambda: [read_lapis(spec, m) for m in messages],
        "aiohttp": lambda: [read_aiohttp(url, key, m, session) for m in messages],
    }
    # The upstream's SSE events per answer (the same prompts in every round and reader).
    _, _, counts = await measure("raw", readers["raw"])  # also warms connections and imports
    events = sum(counts)
    await measure("sdk", readers["sdk"])
    await measure("lapis", readers["lapis"])
    await measure("aiohttp", readers["aiohttp"])
    per_chunk = {name: [] for name in readers}
    walls = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, make in readers.items():
            cpu, wall, _ = await measure(name, make)
            per_chunk[name].append(cpu / events * 1e6)
            walls[name].append(wall)
    await http.aclose()
    await session.close()
    await sdk.close()
    await aclose_clients()
    print(f"{args.streams} streams at once x {events // args.streams} SSE events each, "
          f"{args.chunk_ms} ms apart (one event per read), {args.rounds} rounds, medians")
    raw = statistics.median(per_chunk["raw"])
    print(f"{'reader':<8}{'CPU us/chunk':>14}{'x raw':>8}{'wall s':>9}   rounds")
    for name in readers:
        value = statistics.median(per_chunk[name])
        rounds = " ".join(f"{v:.1f}" for v in per_chunk[name])
        print(f"{name:<8}{value:>14.1f}{value / raw:>8.2f}{statistics.median(walls[name]):>9.2f}   {rounds}")
    lapis, sdk_value = statistics.median(per_chunk["lapis"]), statistics.median(per_chunk["sdk"])
    print(f"lapis over raw: {lapis - raw:.1f} us/chunk; sdk over raw: {sdk_value - raw:.1f} us/chunk; "
          f"lapis/sdk: {lapis / sdk_value:.2f}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--words", type=int, default=600)
    parser.add_argument("--chunk-ms", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url")
    parser.add_argument("--key", default="sim-key")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
