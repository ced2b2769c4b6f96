"""Benchmark the simulator at zero delay: streams per second and chunks per second.

Run:  .venv/bin/python -m tests.simulator.bench_simulator [--streams 400] [--concurrency 16]
      [--words 40] [--url http://127.0.0.1:PORT]   (without --url a simulator subprocess is started)

Two clients: raw HTTP (httpx2, counting SSE events) and the real openai SDK (AsyncAzureOpenAI).
Not collected by pytest (bench_*.py); prints figures, asserts nothing.
"""

import argparse
import asyncio
import time

import httpx2
from openai import AsyncAzureOpenAI

from tests.simulator_fixture import SimulatorProcess

VERSION = "2024-10-21"


def body(words, index):
    return {
        "messages": [{"role": "user", "content": f"[sim:words {words}] bench {index}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def run_raw(url, key, *, streams, concurrency, words):
    endpoint = f"{url}/openai/deployments/gpt-4o-mini/chat/completions?api-version={VERSION}"
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    counter = iter(range(streams))
    chunks = 0

    async def worker(client):
        nonlocal chunks
        for index in counter:
            async with client.stream("POST", endpoint, json=body(words, index),
                                     headers={"api-key": key}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        chunks += 1

    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, chunks


async def run_sdk(url, key, *, streams, concurrency, words):
    counter = iter(range(streams))
    chunks = 0

    async def worker(client):
        nonlocal chunks
        for index in counter:
            stream = await client.chat.completions.create(model="gpt-4o-mini", **body(words, index))
            async for _chunk in stream:
                chunks += 1

    async with AsyncAzureOpenAI(azure_endpoint=url, api_key=key, api_version=VERSION,
                                max_retries=0) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, chunks


def report(name, streams, elapsed, chunks):
    print(f"{name:<6} {streams:>6} streams in {elapsed:6.2f} s: {streams / elapsed:8.1f} streams/s, "
          f"{chunks / elapsed:9.0f} chunks/s ({chunks / streams:.1f} chunks per stream)")


async def main(args):
    sim = None
    url, key = args.url, args.key
    if url is None:
        sim = SimulatorProcess().start()
        url, key = sim.url, sim.api_key
    try:
        print(f"simulator {url}: {args.streams} streams, concurrency {args.concurrency}, "
              f"[sim:words {args.words}], zero delay")
        await run_raw(url, key, streams=args.concurrency, concurrency=args.concurrency, words=5)  # warm-up
        for name, runner in (("raw", run_raw), ("sdk", run_sdk)):
            elapsed, chunks = await runner(url, key, streams=args.streams,
                                           concurrency=args.concurrency, words=args.words)
            report(name, args.streams, elapsed, chunks)
    finally:
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--url", default=None)
    parser.add_argument("--key", default="sim-key")
    asyncio.run(main(parser.parse_args()))
