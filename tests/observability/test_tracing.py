"""OpenTelemetry: a span per answer with the Azure stream as its child, through a real chat.

The spans go to the SDK's InMemorySpanExporter; the chat runs over the websocket of the real
ASGI app against the simulator. Whether tracing is off (nothing imported) and what the
environment turns on is checked in fresh processes, as a server starts.
"""

import json
import os
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from apps.observability import tracing
from tests.chat.conftest import wait_for_generations
from tests.live import ROOT, free_port

SECRET_WORDS = "Project Nightingale budget 4711"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure([SimpleSpanProcessor(exporter)], make_global=False)
    yield exporter
    tracing.reset()


def by_name(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


def all_values(span):
    values = [str(v) for v in span.attributes.values()]
    values += [str(v) for event in span.events for v in event.attributes.values()]
    return values + [span.name, span.status.description or ""]


@pytest.mark.django_db(transaction=True)
async def test_an_answer_has_its_span_and_the_upstream_call_as_child(spans, chat_config, user_a, open_socket, azure_simulator):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "t1", "model": "gpt-4o-mini",
                       "text": f"{SECRET_WORDS} [sim:words 30] [sim:delay chunk=5]"})
    answer = await socket.created_answer()
    assert (await socket.done(answer["id"]))["status"] == "complete"
    await wait_for_generations()

    [root] = by_name(spans, "lapis.answer")
    [upstream] = by_name(spans, "azure.stream")
    assert root.parent is None
    assert upstream.parent is not None and upstream.parent.span_id == root.context.span_id
    assert upstream.context.trace_id == root.context.trace_id
    assert root.start_time <= upstream.start_time and upstream.end_time <= root.end_time
    assert dict(root.attributes) == {
        "lapis.message_id": str(answer["id"]), "lapis.model": "gpt-4o-mini",
        "lapis.group": "simulator", "lapis.deployment": "gpt-4o-mini", "lapis.status": "complete",
    }
    assert [event.name for event in root.events] == ["first_text"]
    assert dict(upstream.attributes) == {
        "lapis.model": "gpt-4o-mini", "lapis.group": "simulator", "lapis.deployment": "gpt-4o-mini",
        "http.response.status_code": 200, "lapis.retries": 0,
    }
    assert root.status.status_code == upstream.status.status_code == StatusCode.UNSET
    # Never the conversation, the answer or the key.
    stored = socket.text_of(answer["id"])
    for span in (root, upstream):
        for text in all_values(span):
            assert SECRET_WORDS not in text and azure_simulator.api_key not in text
            assert stored[:20] not in text


@pytest.mark.django_db(transaction=True)
async def test_a_throttled_answer_has_error_spans_with_the_codes(spans, chat_config, user_a, open_socket):
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "t2", "model": "gpt-4o",
                       "text": "x [sim:429 retry_after=0.1 times=1] [sim:500 times=9]"})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=60)
    assert done["status"] == "error"
    await wait_for_generations()
    [root] = by_name(spans, "lapis.answer")
    [upstream] = by_name(spans, "azure.stream")
    assert upstream.parent.span_id == root.context.span_id
    assert root.attributes["lapis.status"] == "error"
    assert root.attributes["error.type"] == done["error"]["code"]
    assert root.status.status_code == StatusCode.ERROR
    # A 429 retried, then 500s retried until the SDK's limit: Lapis's retries, then the 5xx.
    assert upstream.attributes["lapis.retries"] == 2
    assert upstream.attributes["http.response.status_code"] == 500
    assert upstream.attributes["error.type"] == "5xx"
    assert upstream.status.status_code == StatusCode.ERROR


PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django
django.setup()
from project.application import application  # what Daphne loads
import apps.chat.generation, apps.azure.client  # the hooks' modules
from apps.observability import tracing
from django.conf import settings
print(json.dumps({
    "loaded": sorted({m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace",
        "opentelemetry.exporter", "opentelemetry.instrumentation"))}),
    "tracing": tracing._state["tracer"] is not None,
    "exporters": [type(p.span_exporter).__name__ for p in
        getattr(getattr(tracing._state["provider"], "_active_span_processor", None),
                "_span_processors", ())],
    "middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
}))
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    clean.update(env, LAPIS_TIKTOKEN_DOWNLOAD="0", DATA_DIR=os.environ.get("DATA_DIR", str(ROOT / "data")))
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tracing_off_imports_nothing_of_the_sdk():
    found = probe()
    assert found == {"loaded": [], "tracing": False, "exporters": [], "middleware": []}


def test_the_standard_variables_turn_it_on():
    otlp = probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318")
    assert otlp["tracing"] and otlp["exporters"] == ["OTLPSpanExporter"]
    assert otlp["middleware"] == ["opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"]
    console = probe(OTEL_TRACES_EXPORTER="console")
    assert console["tracing"] and console["exporters"] == ["ConsoleSpanExporter"]
    assert probe(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT="http://x:4318")["tracing"] is False
    assert probe(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="console")["tracing"] is False


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, ["zipkin"]),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_exporter_names_from_the_environment(env, names):
    assert tracing.exporter_names(env) == names


def test_request_spans_lose_the_query_string():
    from opentelemetry.sdk.trace import TracerProvider

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("GET", attributes={
        "http.url": "https://chat.example.org/oidc/callback/?code=SECRET&state=S2",
        "http.target": "/oidc/callback/?code=SECRET&state=S2", "url.query": "code=SECRET",
    })
    tracing._without_query(span, request=None)
    span.end()
    [done] = exporter.get_finished_spans()
    assert "SECRET" not in json.dumps(dict(done.attributes))
    assert done.attributes["http.target"] == "/oidc/callback/"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "lapis.E703"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "lapis.E704"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None),
    ],
)
def test_exporters_lapis_cannot_build_are_system_checks(monkeypatch, settings, env, problem):
    from apps.observability.checks import check_observability

    settings.METRICS_TOKEN = settings.METRICS_ADDRESS = ""
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert [p.id for p in check_observability()] == ([problem] if problem else [])


class Collector:
    """An OTLP/HTTP trace receiver on loopback (aiohttp), decoding what Lapis exports with the
    OpenTelemetry protobuf classes: the path a real collector sees."""

    def __init__(self):
        self.spans = []
        self.runner = None
        self.url = None

    async def start(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def receive(self, request):
        from aiohttp import web
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append((service, span))
        return web.Response(content_type="application/x-protobuf", body=b"")

    def named(self, name):
        return [span for _, span in self.spans if span.name == name]

    async def stop(self):
        await self.runner.cleanup()


def attributes(span):
    out = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind)
    return out


async def test_a_live_server_exports_the_spans_over_otlp(azure_simulator, tmp_path_factory):
    """Daphne with OTEL_EXPORTER_OTLP_ENDPOINT: an answer over a TCP websocket arrives at the
    collector as its span and the upstream child; a page request as a span without its query."""
    import asyncio

    from tests.chat.test_multiprocess import Browserless
    from tests.conftest import TEST_PASSWORD
    from tests.live import LiveServer

    collector = await Collector().start()
    config = tmp_path_factory.mktemp("otlp") / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    server = LiveServer(tmp_path_factory.mktemp("otlp-server"), extra_env={
        "CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SERVICE_NAME": "lapis-test",
    })
    user = None
    try:
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(server.create_user, "dora", TEST_PASSWORD)
        user = await Browserless.sign_in(server, "dora")
        await user.get(server, "/models/?probe=query-secret-value")
        socket = await user.socket(server)
        await socket.send({"type": "send", "client_id": "o1", "model": "gpt-4o",
                           "text": f"{SECRET_WORDS} [sim:words 20]"})
        answer = await socket.created_answer()
        assert (await socket.done(answer["id"]))["status"] == "complete"
        for _ in range(100):
            if collector.named("lapis.answer") and collector.named("azure.stream"):
                break
            await asyncio.sleep(0.1)
        [root], [upstream] = collector.named("lapis.answer"), collector.named("azure.stream")
        assert upstream.parent_span_id == root.span_id and upstream.trace_id == root.trace_id
        assert attributes(root)["lapis.status"] == "complete"
        assert attributes(root)["lapis.model"] == attributes(upstream)["lapis.model"] == "gpt-4o"
        assert attributes(upstream)["http.response.status_code"] == 200
        assert {service["service.name"] for service, _ in collector.spans} == {"lapis-test"}
        requests = [span for _, span in collector.spans if span.kind == span.SPAN_KIND_SERVER]
        assert requests, "Django's request spans are exported too"
        everything = repr([attributes(span) for _, span in collector.spans])
        assert SECRET_WORDS not in everything and azure_simulator.api_key not in everything
        assert "query-secret-value" not in everything and "/models/" in everything
        await socket.close()
    finally:
        if user is not None:
            await user.close()
        await asyncio.to_thread(server.stop)
        await collector.stop()
