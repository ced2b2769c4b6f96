"""Relay benchmark: N answers at once, the upstream alone and through Lapis, side by side.

Run:  .venv/bin/python -m tests.bench.relay --streams 50 --pace fast --profile default
      .venv/bin/python -m tests.bench.relay --streams 1000 --pace azure --profile redis --processes 2

It starts its own OpenAI/Azure-shaped upstream (a small asyncio stub in a subprocess that costs
little per chunk; ``fast``: 200 chunks 5 ms apart after 50 ms, ``azure``: first chunk after
300 ms, then 20 chunks/s, ~10 s), one or two Lapis Daphne processes with a model config pointing
at the stub, and N clients with separate signed-in websockets and separate users, one new
conversation each. In one run it measures the upstream alone (N direct streaming clients) and
then through Lapis, and prints both side by side with ratios: first text p50/p95, total p95,
tokens/s, Daphne CPU per upstream chunk, peak and idle RSS, start to a healthy /healthz, and
correctness: every streamed and every stored text compared byte for byte with what the upstream
sent, seq gaps (frames dropped), resumes, unfinished answers.

``--profile redis`` needs DATABASE_URL (postgres://...) and REDIS_URL in the environment; each
run gets a fresh PostgreSQL database (tests/live.py). Everything stays on 127.0.0.1 and is
bounded in time (the run gives up on answers that did not finish by its deadline).
Prints figures; asserts nothing.
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# pace: (seconds before the first chunk, content chunks, seconds between chunks)
PACES = {"fast": (0.050, 200, 0.005), "azure": (0.300, 200, 0.050)}
NONCE = re.compile(r"nonce=([0-9a-f]{12})")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SILENCE = 15.0  # seconds without a frame before a client resumes (as the page does, but later)


# ----------------------------------------------------------------------------- the upstream


def chunk_text(nonce, index):
    """Content of chunk ``index``: words, with JSON escapes and non-ASCII now and then."""
    if index == 0:
        return f"Answer {nonce}:"
    if index % 25 == 0:
        return ' "quoted" é\n'
    return f" w{index}"


def expected_text(nonce, count):
    return "".join(chunk_text(nonce, i) for i in range(count))


def _sse(payload):
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _http_chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream:
    """The stub's server: answers every POST .../chat/completions with a paced SSE stream."""

    def __init__(self, pace):
        self.first, self.count, self.gap = PACES[pace]
        self.chunks = 0
        self.streams = 0
        self.trace_posts = 0  # OTLP/HTTP exports of Lapis's spans (--observability)

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /health"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    continue
                if head.startswith(b"POST /v1/traces"):  # an OTLP collector that keeps nothing
                    self.trace_posts += 1
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n"
                                 b"content-length: 0\r\n\r\n")
                    continue
                if head.startswith(b"GET /stats"):
                    data = json.dumps({"chunks": self.chunks, "streams": self.streams,
                                       "trace_posts": self.trace_posts}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
                    continue
                await self.stream(writer, json.loads(body or b"{}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stream(self, writer, request):
        started = time.monotonic()
        prompt = json.dumps(request.get("messages", []))
        found = NONCE.search(prompt)
        nonce = found.group(1) if found else "000000000000"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\napim-request-id: bench\r\n\r\n"
        )
        writer.write(_http_chunk(_sse({
            "choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        })))
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": "gpt-4o-2024-11-20", "system_fingerprint": "fp_bench"}
        self.streams += 1
        for index in range(self.count):
            delay = started + self.first + index * self.gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            delta = {"content": chunk_text(nonce, index)}
            if index == 0:
                delta["role"] = "assistant"
            writer.write(_http_chunk(_sse({**base, "choices": [{
                "index": 0, "delta": delta, "finish_reason": None, "logprobs": None,
                "content_filter_results": {},
            }]})))
            self.chunks += 1
            await writer.drain()
        tail = _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                          "logprobs": None, "content_filter_results": {}}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            tail += _sse({**base, "choices": [], "usage": {
                "prompt_tokens": 20, "completion_tokens": self.count, "total_tokens": 20 + self.count}})
        writer.write(_http_chunk(tail + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


async def _serve_upstream(port, pace):
    upstream = Upstream(pace)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


class UpstreamProcess:
    def __init__(self, pace):
        from tests.live import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.relay", "--serve-upstream", str(self.port), "--pace", pace],
            cwd=Path(__file__).resolve().parents[2],
        )

    async def wait(self, session):
        for _ in range(200):
            try:
                async with session.get(self.url + "/health") as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("the upstream stub did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


# ----------------------------------------------------------------------------- measuring


class Result:
    def __init__(self, nonce):
        self.nonce = nonce
        self.sent = None
        self.first_text = None
        self.ended = None
        self.text = ""
        self.chunks = 0
        self.gaps = 0
        self.resumes = 0
        self.status = None
        self.error = None

    @property
    def first_ms(self):
        return None if self.first_text is None else (self.first_text - self.sent) * 1000

    @property
    def total_ms(self):
        return None if self.ended is None else (self.ended - self.sent) * 1000


async def direct_client(session, url, nonce, start, deadline):
    """One streaming request straight to the upstream, read as SSE."""
    result = Result(nonce)
    await start.wait()
    result.sent = time.monotonic()
    body = {"messages": [{"role": "user", "content": prompt(nonce)}], "stream": True,
            "stream_options": {"include_usage": True}}
    try:
        async with session.post(
            url + "/openai/deployments/bench/chat/completions?api-version=2024-10-21", json=body,
            timeout=None,
        ) as response:
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
        result.error = type(exc).__name__
    return result


def prompt(nonce):
    return f"Benchmark question nonce={nonce}: please answer."


async def lapis_client(session, ws_url, origin, cookie, nonce, ready, start, deadline):
    """One user's socket: send a question in a new conversation, assemble the answer by seq
    (resuming on a gap, a missed tail or silence, as the page does), until ``done``."""
    result = Result(nonce)
    try:
        ws = await session.ws_connect(ws_url, headers={"Cookie": cookie, "Origin": origin},
                                      max_msg_size=0, heartbeat=None)
    except Exception as exc:
        result.error = "connect:" + type(exc).__name__
        ready.set_one()
        return result
    try:
        await ws.send_str('{"type":"ping"}')
        while json.loads((await ws.receive()).data)["type"] != "pong":
            pass
        ready.set_one()
        await start.wait()
        result.sent = time.monotonic()
        await ws.send_str(json.dumps({"type": "send", "client_id": nonce, "text": prompt(nonce), "model": "bench"}))
        answer, seq, resyncing = None, 0, False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                message = await asyncio.wait_for(ws.receive(), min(remaining, SILENCE))
            except TimeoutError:
                if answer is None or time.monotonic() >= deadline:
                    raise
                result.resumes += 1
                resyncing = True
                await ws.send_str(json.dumps({"type": "resume", "message_id": answer, "seq": seq}))
                continue
            if message.type != 1:  # aiohttp.WSMsgType.TEXT
                raise ConnectionError(f"socket ended: {message.type}")
            frame = json.loads(message.data)
            kind = frame["type"]
            if kind == "message.created" and frame["message"]["role"] == "assistant":
                answer = frame["message"]["id"]
            elif kind == "delta":
                answer = answer or frame["message_id"]
                if frame["message_id"] != answer or resyncing or frame["seq"] <= seq:
                    continue
                if frame["seq"] != seq + 1:
                    result.gaps += 1
                    result.resumes += 1
                    resyncing = True
                    await ws.send_str(json.dumps({"type": "resume", "message_id": answer, "seq": seq}))
                    continue
                if result.first_text is None and frame["text"]:
                    result.first_text = time.monotonic()
                result.text += frame["text"]
                seq = frame["seq"]
            elif kind == "snapshot" and frame["message_id"] == answer:
                resyncing = False
                if frame["seq"] >= seq:
                    result.text, seq = frame["text"], frame["seq"]
                    if result.first_text is None and result.text:
                        result.first_text = time.monotonic()
            elif kind == "done" and frame["message_id"] == answer:
                if frame["seq"] > seq and not resyncing:
                    result.gaps += 1
                    result.resumes += 1
                    resyncing = True
                    await ws.send_str(json.dumps({"type": "resume", "message_id": answer, "seq": seq}))
                    continue
                if resyncing:
                    continue
                result.ended, result.status = time.monotonic(), frame["status"]
                break
            elif kind == "error":
                result.error = frame.get("code")
                break
    except Exception as exc:
        result.error = result.error or type(exc).__name__
    finally:
        await ws.close()
    return result


class Countdown:
    def __init__(self, count):
        self.count = count
        self.event = asyncio.Event()
        if count == 0:
            self.event.set()

    def set_one(self):
        self.count -= 1
        if self.count <= 0:
            self.event.set()


def proc_cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_mem(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB
    return 0.0


def pct(values, q):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(results, pace_count):
    done = [r for r in results if r.ended is not None]
    began = min((r.sent for r in results if r.sent), default=0)
    ended = max((r.ended for r in done), default=began)
    chunks = sum(r.chunks or (len(r.text) and pace_count) for r in done)
    return {
        "first_p50": pct([r.first_ms for r in results], 50),
        "first_p95": pct([r.first_ms for r in results], 95),
        "total_p95": pct([r.total_ms for r in results], 95),
        "tokens_s": chunks / (ended - began) if ended > began else None,
        "finished": len(done),
    }


# ----------------------------------------------------------------------------- Lapis


def config_yaml(upstream_url):
    return (
        "endpoints:\n  azureOpenAI:\n    titleConvo: false\n    summarize: false\n    groups:\n"
        f"      - group: bench\n        apiKey: ${{LAPIS_BENCH_KEY}}\n        endpoint: {upstream_url}\n"
        "        version: 2024-10-21\n        models:\n          bench:\n            deploymentName: bench\n"
    )


SESSIONS_CODE = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
User = get_user_model()
users = User.objects.bulk_create([User(username=f"bench{i}", password="!") for i in range(N + PROCESSES)])
keys = []
for user in User.objects.filter(username__startswith="bench").order_by("id"):
    s = SessionStore()
    s[SESSION_KEY] = str(user.pk)
    s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    keys.append(s.session_key)
print(json.dumps(keys))
"""

STORED_CODE = """
import json
from apps.chat.models import Message
out = {}
for m in Message.objects.filter(role="assistant").select_related("parent"):
    out[m.parent.content] = [m.status, m.content]
print(json.dumps(out))
"""


def observability_env(upstream_url):
    """Metrics (a bearer token and a listener per process) and traces (OTLP/HTTP to the stub,
    which answers 200 and keeps nothing) both on, as an operator would run them."""
    from tests.live import free_port

    return {"METRICS_TOKEN": "bench-" + uuid.uuid4().hex, "METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": upstream_url, "OTEL_BSP_SCHEDULE_DELAY": "1000"}


def start_lapis(args, upstream_url, work, extra_env=None):
    from tests.live import LiveServer, free_port

    config = work / "models.yaml"
    config.write_text(config_yaml(upstream_url))
    env = {"CONFIG_PATH": str(config), "LAPIS_BENCH_KEY": "bench-key",
           "SECRET_KEY": "bench-" + uuid.uuid4().hex, "LOG_LEVEL": "WARNING", **(extra_env or {})}
    servers = [LiveServer(work / "a", extra_env=env)]
    (work / "a").mkdir()
    servers[0].manage("migrate", "--noinput", "-v0")
    timings = []
    began = time.monotonic()
    servers[0].start(migrate=False)
    timings.append(time.monotonic() - began)
    for index in range(1, args.processes):
        (work / f"p{index}").mkdir()
        if "METRICS_ADDRESS" in env:  # a listener of its own per process
            env = {**env, "METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}
        server = LiveServer(work / f"p{index}", extra_env=env, database_url=servers[0].database_url)
        began = time.monotonic()
        server.start(migrate=False)
        timings.append(time.monotonic() - began)
        servers.append(server)
    return servers, timings


async def lapis_round(args, upstream, session, work, *, budget, count, extra_env=None):
    """N answers through freshly started Lapis processes (``extra_env`` added to theirs);
    returns the clients' results and the processes' figures."""
    servers = []
    try:
        async with session.get(upstream.url + "/stats") as response:
            stats_before = await response.json(content_type=None)
        servers, startup = await asyncio.to_thread(start_lapis, args, upstream.url, work, extra_env)
        pids = [s.process.pid for s in servers]
        await asyncio.sleep(1.0)
        idle_rss = [proc_mem(pid, "VmRSS") for pid in pids]
        keys = json.loads(
            (await asyncio.to_thread(servers[0].shell, SESSIONS_CODE.replace("N + PROCESSES", f"{args.streams + args.processes}"))).strip().splitlines()[-1]
        )
        # One answer first, not measured: the process's first request loads what it loads lazily
        # (the model client, the token encoder), which says nothing about relaying at scale.
        for server in servers:
            warm_ready, warm_start = Countdown(1), asyncio.Event()
            warm_start.set()
            warm = await lapis_client(
                session, server.url.replace("http://", "ws://") + "/ws/chat/", server.url,
                f"sessionid={keys.pop()}", uuid.uuid4().hex[:12], warm_ready, warm_start,
                time.monotonic() + budget,
            )
            if warm.error:
                raise RuntimeError(f"the warm-up answer failed: {warm.error}\n{server.log()[-3000:]}")
        ready, start = Countdown(args.streams), asyncio.Event()
        deadline = time.monotonic() + budget + 60
        tasks = []
        for index, key in enumerate(keys):
            server = servers[index % len(servers)]
            ws_url = server.url.replace("http://", "ws://") + "/ws/chat/"
            tasks.append(asyncio.create_task(lapis_client(
                session, ws_url, server.url, f"sessionid={key}", uuid.uuid4().hex[:12], ready, start, deadline
            )))
            if index % 50 == 49:
                await asyncio.sleep(0.05)  # don't open 1,000 sockets in one burst
        await asyncio.wait_for(ready.event.wait(), 120)
        await asyncio.sleep(0.5)
        cpu_before = [proc_cpu(pid) for pid in pids]
        start.set()
        through = await asyncio.gather(*tasks)
        cpu = sum(proc_cpu(pid) - before for pid, before in zip(pids, cpu_before, strict=True))
        peak_rss = [proc_mem(pid, "VmHWM") for pid in pids]
        counted = await _counted_answers(session, servers) if extra_env else None
        await asyncio.sleep(1.5 if extra_env else 0)  # the span batches' last export
        async with session.get(upstream.url + "/stats") as response:
            stats = await response.json(content_type=None)
        stored = json.loads((await asyncio.to_thread(servers[0].shell, STORED_CODE)).strip().splitlines()[-1])
    finally:
        for server in reversed(servers):
            server.stop()
    streamed_ok = sum(r.text == expected_text(r.nonce, count) for r in through)
    stored_ok = sum(
        1 for r in through
        if stored.get(prompt(r.nonce), [None, None])[1] == expected_text(r.nonce, count)
        and stored[prompt(r.nonce)][0] == "complete"
    )
    lapis_chunks = stats["chunks"] - stats_before["chunks"] - count * args.processes  # warm-ups
    return through, {
        "streamed_ok": streamed_ok, "stored_ok": stored_ok,
        "gaps": sum(r.gaps for r in through), "resumes": sum(r.resumes for r in through),
        "errors": sorted({r.error for r in through if r.error}),
        "cpu_us": cpu / lapis_chunks * 1e6 if lapis_chunks else None, "cpu_s": cpu,
        "cpu_per_answer_ms": cpu / args.streams * 1e3,
        "chunks": lapis_chunks, "peak_rss": peak_rss, "idle_rss": idle_rss, "startup": startup,
        "trace_posts": stats.get("trace_posts", 0) - stats_before.get("trace_posts", 0),
        "counted": counted,
    }


async def _counted_answers(session, servers):
    """Answers the processes' metrics listeners counted as finished (proof the figures were on)."""
    from prometheus_client.parser import text_string_to_metric_families

    counted = 0
    for server in servers:
        async with session.get(f"http://{server.env['METRICS_ADDRESS']}/metrics") as response:
            text = await response.text()
        for family in text_string_to_metric_families(text):
            counted += sum(s.value for s in family.samples if s.name == "lapis_answers_finished_total")
    return int(counted)


async def run(args):
    import aiohttp

    first, count, gap = PACES[args.pace]
    budget = first + count * gap + 60 + args.streams * 0.05
    upstream = UpstreamProcess(args.pace)
    work = Path(tempfile.mkdtemp(prefix="lapis-relay-"))
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    try:
        await upstream.wait(session)
        # 1. the upstream alone
        start = asyncio.Event()
        deadline = time.monotonic() + budget
        tasks = [asyncio.create_task(direct_client(session, upstream.url, uuid.uuid4().hex[:12], start, deadline))
                 for _ in range(args.streams)]
        await asyncio.sleep(0.2)
        start.set()
        alone = await asyncio.gather(*tasks)
        alone_ok = sum(r.text == expected_text(r.nonce, count) for r in alone)

        # 2. through Lapis (3. again with metrics and tracing on, for --observability compare)
        rounds = {"off": [None], "on": [observability_env(upstream.url)],
                  "compare": [None, observability_env(upstream.url)]}[args.observability]
        measured = []
        for index, extra_env in enumerate(rounds):
            round_dir = work / f"round{index}"
            round_dir.mkdir()
            measured.append(await lapis_round(
                args, upstream, session, round_dir, budget=budget, count=count, extra_env=extra_env
            ))
    finally:
        await session.close()
        upstream.stop()

    for (through, extra), extra_env in zip(measured, rounds, strict=True):
        report(args, summary(alone, count), summary(through, count), {"alone_ok": alone_ok, **extra},
               observed=extra_env is not None)
    if len(measured) == 2:
        overhead(args, [summary(through, count) for through, _ in measured], [extra for _, extra in measured])


def _fmt(value, unit=""):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}{unit}" if abs(value) >= 100 else f"{value:,.1f}{unit}"
    return f"{value}{unit}"


def report(args, alone, lapis, extra, *, observed=False):
    n = args.streams
    watching = "metrics + tracing ON" if observed else "metrics + tracing off"
    print(f"\nrelay benchmark: {n} stream(s), pace {args.pace}, profile {args.profile}, "
          f"{args.processes} Daphne process(es), {watching}; load {os.getloadavg()[0]:.2f}")
    print(f"{'figure':<28}{'upstream alone':>16}{'through Lapis':>16}{'ratio / diff':>16}")
    rows = [("first text p50 (ms)", "first_p50"), ("first text p95 (ms)", "first_p95"),
            ("total p95 (ms)", "total_p95"), ("tokens/s (aggregate)", "tokens_s")]
    for label, key in rows:
        a, b = alone[key], lapis[key]
        if a is None or b is None:
            ratio = "–"
        elif key == "tokens_s":
            ratio = f"{b / a:.0%}"
        else:
            ratio = f"+{b - a:,.1f} ms"
        print(f"{label:<28}{_fmt(a):>16}{_fmt(b):>16}{ratio:>16}")
    print(f"{'finished':<28}{alone['finished']:>16}{lapis['finished']:>16}")
    print(f"{'text byte-identical':<28}{extra['alone_ok']:>16}{extra['streamed_ok']:>16}  (streamed)")
    print(f"{'':<28}{'':>16}{extra['stored_ok']:>16}  (stored, status complete)")
    print(f"Lapis CPU per upstream chunk: {_fmt(extra['cpu_us'], ' µs')} "
          f"({extra['cpu_s']:.1f} s CPU for {extra['chunks']} chunks)")
    print(f"seq gaps (frames dropped): {extra['gaps']}; resumes: {extra['resumes']}; "
          f"errors: {', '.join(map(str, extra['errors'])) or 'none'}")
    print("per Daphne process: idle RSS " + ", ".join(f"{v:.0f} MB" for v in extra["idle_rss"])
          + "; peak RSS " + ", ".join(f"{v:.0f} MB" for v in extra["peak_rss"])
          + "; start to healthy " + ", ".join(f"{v:.2f} s" for v in extra["startup"]))
    if observed:
        print(f"observability: {extra['counted']} answers counted by the metrics listeners "
              f"(warm-ups included); {extra['trace_posts']} OTLP span exports received")


def overhead(args, lapis, extras):
    """Metrics + tracing on against off, per answer: the Lapis processes' CPU and the latencies."""
    off, on = lapis
    print(f"\nobservability overhead ({args.streams} answers of {PACES[args.pace][1]} chunks; "
          "two runs of fresh processes: differences under a few % are noise on a shared box)")
    print(f"{'figure':<30}{'off':>14}{'on':>14}{'on − off':>16}")
    cpu = [extra["cpu_per_answer_ms"] for extra in extras]
    print(f"{'Lapis CPU per answer (ms)':<30}{cpu[0]:>14.2f}{cpu[1]:>14.2f}"
          f"{cpu[1] - cpu[0]:>+12.2f} ms ({(cpu[1] - cpu[0]) / cpu[0]:+.1%})")
    chunk = [extra["cpu_us"] or 0 for extra in extras]
    print(f"{'Lapis CPU per chunk (µs)':<30}{chunk[0]:>14.1f}{chunk[1]:>14.1f}{chunk[1] - chunk[0]:>+13.1f} µs")
    for label, key in (("first text p50 (ms)", "first_p50"), ("first text p95 (ms)", "first_p95"),
                       ("total p95 (ms)", "total_p95")):
        a, b = off[key], on[key]
        diff = "–" if a is None or b is None else f"{b - a:+,.1f} ms"
        print(f"{label:<30}{_fmt(a):>14}{_fmt(b):>14}{diff:>16}")
    rss = [sum(extra["peak_rss"]) for extra in extras]
    print(f"{'peak RSS, all processes (MB)':<30}{rss[0]:>14.0f}{rss[1]:>14.0f}{rss[1] - rss[0]:>+13.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--pace", choices=sorted(PACES), default="fast")
    parser.add_argument("--profile", choices=["default", "redis"], default="default")
    parser.add_argument("--processes", type=int, choices=[1, 2], default=1)
    parser.add_argument(
        "--observability", choices=["off", "on", "compare"], default="off",
        help="metrics (METRICS_TOKEN, METRICS_ADDRESS) and tracing (OTLP to the stub) in the "
        "Lapis processes; compare: a run without, then one with, and the overhead per answer",
    )
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(_serve_upstream(args.serve_upstream, args.pace))
        return
    if not 1 <= args.streams <= 1000:
        parser.error("--streams must be between 1 and 1000")
    if args.profile == "redis":
        if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
            parser.error("--profile redis needs DATABASE_URL=postgres://... and REDIS_URL=redis://... set")
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
        if args.processes != 1:
            parser.error("--processes 2 needs --profile redis (the in-memory layer is per process)")
    os.environ.setdefault("LAPIS_TIKTOKEN_DOWNLOAD", "0")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
