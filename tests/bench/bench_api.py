"""API chat streaming benchmark: N streams at once, the upstream alone and through Lapis's
OpenAI-compatible /v1/chat/completions, side by side (the relay benchmark's method).

Run:  .venv/bin/python -m tests.bench.bench_api --streams 50 --pace fast --profile default
      .venv/bin/python -m tests.bench.bench_api --streams 50 --pace azure --profile redis

The upstream is the relay benchmark's stub (tests/bench/relay.py: ``fast``: 200 chunks 5 ms apart
after 50 ms; ``azure``: first chunk after 300 ms, then 20 chunks/s). First N clients stream
straight from it, then N clients, each a different user with their own personal API key, stream
the same through one Lapis Daphne process; every client reads the SSE stream with aiohttp the
same way. Printed side by side with ratios: first text p50/p95, total p95, tokens/s, Lapis CPU
per upstream chunk, peak RSS; and correctness: every streamed text compared byte for byte with
what the upstream sent, and one usage row recorded per call. Prints figures; asserts nothing.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from tests.bench.relay import (
    PACES,
    Countdown,
    Result,
    UpstreamProcess,
    _fmt,
    direct_client,
    expected_text,
    proc_cpu,
    proc_mem,
    prompt,
    start_lapis,
    summary,
)

KEYS_CODE = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from apps.gateway.services import create_key
User = get_user_model()
group = Group.objects.create(name="bench-api")
group.permissions.add(Permission.objects.get(codename="use_api_keys"))
keys = []
for i in range(COUNT):
    user = User.objects.create(username=f"api{i}", password="!")
    user.groups.add(group)
    keys.append(create_key(user=user, name="bench")[1])
print(json.dumps(keys))
"""

USAGE_CODE = """
from apps.chat.models import UsageRecord
print(UsageRecord.objects.filter(purpose="api").count())
"""


async def api_client(session, base_url, key, nonce, ready, start, deadline):
    """One streaming call to Lapis's /v1/chat/completions, read as SSE (as direct_client)."""
    result = Result(nonce)
    ready.set_one()
    await start.wait()
    result.sent = time.monotonic()
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt(nonce)}], "stream": True}
    try:
        async with session.post(base_url + "/v1/chat/completions", json=body, timeout=None,
                                headers={"Authorization": f"Bearer {key}"}) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            async for line in response.content:
                if not line.startswith(b"data: {"):
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if result.first_text is None:
                            result.first_text = time.monotonic()
                        result.text += content
                        result.chunks += 1
                if time.monotonic() > deadline:
                    raise TimeoutError
        result.ended, result.status = time.monotonic(), "complete"
    except Exception as exc:
        result.error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return result


async def run(args):
    import aiohttp

    first, count, gap = PACES[args.pace]
    budget = first + count * gap + 60 + args.streams * 0.05
    upstream = UpstreamProcess(args.pace)
    work = Path(tempfile.mkdtemp(prefix="lapis-api-bench-"))
    servers = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                    cookie_jar=aiohttp.DummyCookieJar())
    args.processes = 1
    try:
        await upstream.wait(session)
        start = asyncio.Event()
        deadline = time.monotonic() + budget
        tasks = [asyncio.create_task(direct_client(session, upstream.url, uuid.uuid4().hex[:12], start, deadline))
                 for _ in range(args.streams)]
        await asyncio.sleep(0.2)
        start.set()
        alone = await asyncio.gather(*tasks)

        servers, _ = await asyncio.to_thread(start_lapis, args, upstream.url, work)
        server = servers[0]
        pid = server.process.pid
        code = KEYS_CODE.replace("COUNT", str(args.streams + 1))
        keys = json.loads((await asyncio.to_thread(server.shell, code)).strip().splitlines()[-1])
        warm_ready, warm_start = Countdown(1), asyncio.Event()
        warm_start.set()
        warm = await api_client(session, server.url, keys.pop(), uuid.uuid4().hex[:12], warm_ready,
                                warm_start, time.monotonic() + budget)
        if warm.error:
            raise RuntimeError(f"the warm-up call failed: {warm.error}\n{server.log()[-3000:]}")
        ready, start = Countdown(args.streams), asyncio.Event()
        deadline = time.monotonic() + budget + 60
        tasks = [asyncio.create_task(api_client(session, server.url, key, uuid.uuid4().hex[:12], ready, start, deadline))
                 for key in keys]
        await asyncio.wait_for(ready.event.wait(), 60)
        cpu_before = proc_cpu(pid)
        start.set()
        through = await asyncio.gather(*tasks)
        cpu = proc_cpu(pid) - cpu_before
        peak_rss = proc_mem(pid, "VmHWM")
        await asyncio.sleep(0.5)  # the last usage rows are written after the stream's end
        recorded = int((await asyncio.to_thread(server.shell, USAGE_CODE)).strip().splitlines()[-1]) - 1
    finally:
        await session.close()
        for server in servers:
            server.stop()
        upstream.stop()

    a, b = summary(alone, count), summary(through, count)
    chunks = sum(r.chunks for r in through)
    print(f"\nAPI benchmark: {args.streams} stream(s) at once, pace {args.pace}, profile {args.profile}; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'figure':<28}{'upstream alone':>16}{'through /v1':>16}{'ratio / diff':>16}")
    for label, key in (("first text p50 (ms)", "first_p50"), ("first text p95 (ms)", "first_p95"),
                       ("total p95 (ms)", "total_p95"), ("tokens/s (aggregate)", "tokens_s")):
        x, y = a[key], b[key]
        ratio = "–" if x is None or y is None else (f"{y / x:.0%}" if key == "tokens_s" else f"+{y - x:,.1f} ms")
        print(f"{label:<28}{_fmt(x):>16}{_fmt(y):>16}{ratio:>16}")
    print(f"{'finished':<28}{a['finished']:>16}{b['finished']:>16}")
    print(f"{'text byte-identical':<28}{sum(r.text == expected_text(r.nonce, count) for r in alone):>16}"
          f"{sum(r.text == expected_text(r.nonce, count) for r in through):>16}")
    print(f"usage rows recorded: {recorded} of {args.streams}")
    print(f"Lapis CPU per upstream chunk: {_fmt(cpu / chunks * 1e6 if chunks else None, ' µs')} "
          f"({cpu:.1f} s CPU for {chunks} chunks); peak RSS {peak_rss:.0f} MB")
    errors = sorted({r.error for r in through if r.error})
    print(f"errors: {', '.join(errors) or 'none'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--pace", choices=sorted(PACES), default="fast")
    parser.add_argument("--profile", choices=["default", "redis"], default="default")
    args = parser.parse_args()
    if not 1 <= args.streams <= 500:
        parser.error("--streams must be between 1 and 500")
    if args.profile == "redis":
        if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
            parser.error("--profile redis needs DATABASE_URL=postgres://... and REDIS_URL=redis://... set")
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LAPIS_TIKTOKEN_DOWNLOAD", "0")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
