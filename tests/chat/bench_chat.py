"""Chat benchmark: database writes for one 1,000-token answer, and first-chunk-to-first-paint.

Run:  .venv/bin/python -m tests.chat.bench_chat [--chunk-ms 10] [--runs 5]

1. Writes: a real generation through the ASGI app (WebsocketCommunicator) against the simulator
   over HTTP (``[sim:words 1000] [sim:delay chunk=MS]``) on a fresh SQLite database; every
   INSERT/UPDATE/DELETE is counted with a connection execute_wrapper.
2. Latency: a live Lapis server (Daphne) and Chromium. The simulator logs when each request
   arrived and waits ``ttft`` before its first chunk, so the first chunk leaves it at
   ``arrival + ttft``; the browser marks ``lapis-first-text`` when it has rendered text. Both are
   wall-clock times on this machine, so the difference is the time from the simulator's first
   chunk to the first rendered text (Azure client → generation → channel layer → socket → render).
Prints figures; asserts nothing about time.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

TTFT_MS = 300


def setup_django(data_dir):
    os.environ["DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LAPIS_TIKTOKEN_DOWNLOAD", "0")
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class WriteCounter:
    def __init__(self):
        self.writes = []

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            self.writes.append((time.monotonic(), sql.split(" WHERE ")[0][:60]))
        return execute(sql, params, many, context)


async def one_generation(client, chunk_ms, counter):
    from channels.testing import WebsocketCommunicator

    from project.application import application

    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
    )
    await socket.connect()
    started = time.monotonic()
    await socket.send_json_to(
        {"type": "send", "client_id": "bench", "model": "gpt-4o",
         "text": f"Write at length [sim:words 1000] [sim:delay chunk={chunk_ms}]"}
    )
    deltas = 0
    first_delta = None
    while True:
        frame = await socket.receive_json_from(timeout=120)
        if frame["type"] == "delta":
            deltas += 1
            first_delta = first_delta or time.monotonic()
        if frame["type"] == "done":
            break
    ended = time.monotonic()
    await asyncio.sleep(0.2)
    await socket.disconnect()
    return frame, deltas, started, first_delta, ended


def bench_writes(simulator, chunk_ms):
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.db.backends.signals import connection_created
    from django.test import Client

    from apps.azure.services import load_and_activate
    from apps.chat.models import Message

    result = load_and_activate(text=simulator.config_yaml(titleConvo=False, summarize=False), source="command")
    assert not result.errors, result.errors
    user = get_user_model().objects.create_user("bench", password="Zebra-crossing-42!")
    client = Client()
    client.force_login(user)
    counter = WriteCounter()
    connection_created.connect(lambda sender, connection, **kw: connection.execute_wrappers.append(counter), weak=False)
    for connection in connections.all():
        connection.execute_wrappers.append(counter)
    done, deltas, started, first_delta, ended = async_to_sync(one_generation)(client, chunk_ms, counter)
    answer = Message.objects.get(id=done["message_id"])
    during = [w for w in counter.writes if first_delta <= w[0] <= ended]
    print("== Database writes for one 1,000-token answer ==")
    print(f"answer: status {answer.status}, {answer.completion_tokens or '?'} completion tokens, "
          f"{len(answer.content)} chars, streamed in {ended - started:.1f} s (simulator chunk delay {chunk_ms} ms)")
    print(f"delta frames sent to the socket: {deltas} (coalesced every 40 ms)")
    print(f"database writes for the whole exchange: {len(counter.writes)}")
    print(f"  of which while the answer streamed (checkpoints + final): {len(during)}")
    for _, sql in counter.writes:
        print(f"    {sql}")
    print(f"writes per 1,000 tokens while streaming: {1000 * len(during) / max(answer.completion_tokens or 1000, 1):.1f}")


def bench_latency(simulator, runs):
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, TEST_PASSWORD, login
    from tests.live import LiveServer

    data = tempfile.mkdtemp(prefix="lapis-bench-")
    config = os.path.join(data, "models.yaml")
    with open(config, "w") as handle:
        handle.write(simulator.config_yaml(titleConvo=False, summarize=False))
    server = LiveServer(data, extra_env={"CONFIG_PATH": config, "LAPIS_SIM_KEY": simulator.api_key})
    server.start()
    server.create_user("bench", TEST_PASSWORD)
    figures = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            login(page, server.url, "bench")
            for run in range(runs):
                page.goto(server.url + "/")
                page.wait_for_selector("[data-chat][data-ready='1']")
                simulator.reset()
                page.fill("[data-testid=composer-input]", f"Run {run} [sim:words 200] [sim:delay ttft={TTFT_MS} chunk=10]")
                page.keyboard.press("Enter")
                page.wait_for_function("() => performance.getEntriesByName('lapis-first-text').length > 0", timeout=30_000)
                painted = page.evaluate(
                    "() => performance.timeOrigin + performance.getEntriesByName('lapis-first-text')[0].startTime"
                )
                arrival = [r for r in simulator.requests() if r["deployment"] == "gpt-4o"][0]["time"]
                figures.append(painted - (arrival * 1000 + TTFT_MS))
                page.wait_for_selector("[data-testid=message][data-role=assistant][data-status=complete]", timeout=60_000)
            browser.close()
    finally:
        server.stop()
    print("== Simulator's first chunk → browser's first rendered text ==")
    print(f"runs: {runs}; ms: " + ", ".join(f"{f:.0f}" for f in figures))
    print(f"median {statistics.median(figures):.0f} ms, min {min(figures):.0f} ms, max {max(figures):.0f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunk-ms", type=int, default=10, help="simulator delay between chunks")
    parser.add_argument("--runs", type=int, default=5, help="browser latency runs")
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    setup_django(tempfile.mkdtemp(prefix="lapis-bench-db-"))
    from tests.simulator_fixture import SimulatorProcess

    simulator = SimulatorProcess().start()
    os.environ["LAPIS_SIM_KEY"] = simulator.api_key
    try:
        bench_writes(simulator, args.chunk_ms)
        bench_latency(simulator, args.runs)
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
