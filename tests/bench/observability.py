"""What metrics and tracing cost per answer: Lapis's hooks alone, off and on, side by side.

Run:  .venv/bin/python -m tests.bench.observability [--answers 5000] [--chunks 200]

The relay benchmark (``python -m tests.bench.relay --observability compare``) measures the
whole stack with and without them, but on a shared 2-core machine two runs of fresh processes
differ by more than the hooks cost. Here the same hooks the answer path calls
(apps.observability.observe: an answer's watch, its upstream call, one first-text check per
chunk, the checkpoint writer's two timed writes) run N times in one process, first with
everything off, then with the Prometheus figures on and spans exported over OTLP/HTTP to a
local collector stub (the relay benchmark's, which answers 200 and keeps nothing); process CPU
time is measured, the exporter's thread and the final flush included. Prints figures; asserts
nothing.
"""

import argparse
import asyncio
import contextvars
import os
import time
from types import SimpleNamespace


def one_answer(observe, metrics, index, chunks):
    """The hooks of one answer, as apps.chat.generation and apps.azure.client call them."""
    message = SimpleNamespace(pk=index, model_key="gpt-4o", group="eu-west", deployment="gpt-4o")
    model = SimpleNamespace(key="gpt-4o", group="eu-west", deployment="gpt-4o")
    watch = observe.AnswerWatch()
    watch.started(message)
    call = observe.upstream_call(model)
    call.responded(200)
    relayed = False
    for _ in range(chunks):  # the per-chunk check in Generation._stream
        if not relayed:
            watch.first_text()
            relayed = True
    call.end()
    with metrics.checkpoint_write("batch"):
        pass
    with metrics.checkpoint_write("final"):
        pass
    watch.finished("complete", None)


def measure(answers, chunks):
    from apps.observability import metrics, observe

    began = time.process_time()
    for index in range(answers):
        # Each answer in a context of its own, as each generation is its own asyncio task.
        contextvars.copy_context().run(one_answer, observe, metrics, index, chunks)
    return time.process_time() - began


async def _collector():
    from tests.bench.relay import UpstreamProcess

    stub = UpstreamProcess("fast")
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await stub.wait(session)
    return stub


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=5000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--relay-cpu-ms", type=float, help="Lapis's CPU per answer from "
                        "tests.bench.relay, to print the hooks' cost as a share of it")
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith(("OTEL_", "METRICS_"))]:
        del os.environ[name]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.conf import settings
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from apps.observability import tracing

    measure(200, args.chunks)  # warm-up: imports, label children
    off = measure(args.answers, args.chunks)

    stub = asyncio.run(_collector())
    try:
        settings.METRICS_TOKEN = "bench-token-" + "x" * 24
        measure(200, args.chunks)
        metrics_only = measure(args.answers, args.chunks)
        exporter = OTLPSpanExporter(endpoint=stub.url + "/v1/traces")
        provider = tracing.configure([BatchSpanProcessor(exporter)], make_global=False)
        measure(200, args.chunks)
        began = time.process_time()
        measure(args.answers, args.chunks)
        provider.force_flush()  # the last spans' export counts too
        on = time.process_time() - began
        tracing.reset()
    finally:
        stub.stop()

    n = args.answers
    print(f"\nobservability hooks: {n} answers of {args.chunks} chunks each, one process; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'CPU per answer (µs)':<34}{'off':>12}{'metrics':>12}{'+ tracing':>12}{'on − off':>14}")
    print(f"{'':<34}{off / n * 1e6:>12.1f}{metrics_only / n * 1e6:>12.1f}{on / n * 1e6:>12.1f}"
          f"{(on - off) / n * 1e6:>+14.1f}")
    if args.relay_cpu_ms:
        print(f"against Lapis's CPU per answer of {args.relay_cpu_ms:g} ms (tests.bench.relay): "
              f"{(on - off) / n * 1e3 / args.relay_cpu_ms:.2%} more")


if __name__ == "__main__":
    main()
