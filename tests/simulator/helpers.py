"""Shared bits for the simulator's contract tests (clients on the real openai SDK)."""

import asyncio
import time

from openai import AsyncAzureOpenAI, AsyncOpenAI

CHAT_VERSION = "2024-10-21"
OLD_VERSION = "2024-06-01"


def azure_client(sim, *, version=CHAT_VERSION, **kwargs):
    options = {"api_key": sim.api_key, "max_retries": 0, **kwargs}
    return AsyncAzureOpenAI(azure_endpoint=sim.url, api_version=version, **options)


def openai_client(sim, path, **kwargs):
    options = {"api_key": sim.api_key, "max_retries": 0, **kwargs}
    return AsyncOpenAI(base_url=sim.url + path, **options)


def user(text, *, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": text}]


async def collect(stream):
    return [chunk async for chunk in stream]


def content_of(chunks):
    return "".join(
        c.choices[0].delta.content or ""
        for c in chunks
        if c.choices and c.choices[0].delta is not None
    )


async def wait_for_entry(sim, predicate, timeout=10.0):
    """Poll the simulator's request log until an entry matches (the server notices a disconnect
    asynchronously, so there is no event to await); returns the entry or fails."""
    deadline = time.monotonic() + timeout
    while True:
        entries = await asyncio.to_thread(sim.requests)
        for entry in entries:
            if predicate(entry):
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching request in the log; last entries: {entries[-3:]}")
        await asyncio.sleep(0.05)
