"""No Azure call follows a redirect (issue 13): the stream reader, the SDK's non-streamed calls,
image generation (both flows) and the Entra token request. A redirect is an UpstreamError that
names the status, and the address it points to never sees a request.

Two real local servers: one answers every request with ``307`` to the other, which records
whether anything reached it.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.azure.client import aclose_clients, complete_chat, stream_chat
from apps.azure.config import parse_config
from apps.azure.errors import UpstreamError
from apps.azure.images import generate_image
from apps.azure.registry import Registry

HI = [{"role": "user", "content": "hi"}]


class Server:
    """A threaded HTTP server; ``status`` 307 redirects to ``location`` + the request path."""

    def __init__(self, *, status=200, location=None):
        self.hits = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.hits.append((self.command, self.path))
                if status == 307:
                    self.send_response(307)
                    self.send_header("Location", location + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    elsewhere = Server()
    redirector = Server(status=307, location=elsewhere.url)
    yield redirector, elsewhere
    redirector.close()
    elsewhere.close()


@pytest.fixture(autouse=True)
async def _clean():
    yield
    await aclose_clients()


def spec(redirector, key="gpt-4o", auth="apiKey: k-123456", version="2024-10-21"):
    text = (
        "endpoints:\n  azureOpenAI:\n    groups:\n      - group: g\n"
        f"        {auth}\n        endpoint: {redirector.url}\n        deploymentName: dep\n"
        f'        version: "{version}"\n        models:\n          {key}: true\n'
    )
    result = parse_config(text, environ={"CONFIG_ALLOWED_ENDPOINT_HOSTS": "127.0.0.1"})
    assert result.errors == [], [str(p) for p in result.errors]
    return Registry(result.config).get(key)


def assert_redirect_refused(info, elsewhere, redirector):
    error = info.value
    assert error.code == "upstream_redirect" and error.status == 307
    assert "redirect (307)" in error.message and "does not follow" in error.message
    assert elsewhere.url.split("//")[1] in error.admin_detail  # staff see where it pointed
    assert redirector.hits, "the request reached the redirecting endpoint"
    assert elsewhere.hits == [], "a redirect was followed"


async def test_the_stream_reader_does_not_follow(servers):
    redirector, elsewhere = servers
    with pytest.raises(UpstreamError) as info:
        [event async for event in stream_chat(spec(redirector), HI)]
    assert_redirect_refused(info, elsewhere, redirector)
    assert len(redirector.hits) == 1  # a redirect is not retried either


async def test_non_streamed_sdk_calls_do_not_follow(servers):
    redirector, elsewhere = servers
    with pytest.raises(UpstreamError) as info:
        await complete_chat(spec(redirector), HI)
    assert_redirect_refused(info, elsewhere, redirector)


@pytest.mark.parametrize(("key", "version"), [("dall-e-3", "2024-02-01"), ("dall-e-2", "2023-06-01-preview")])
async def test_image_generation_does_not_follow(servers, key, version):
    redirector, elsewhere = servers
    with pytest.raises(UpstreamError) as info:
        await generate_image(spec(redirector, key=key, version=version), prompt="a lighthouse", timeout=20)
    assert_redirect_refused(info, elsewhere, redirector)


async def test_the_entra_token_request_does_not_follow(servers, monkeypatch):
    redirector, elsewhere = servers
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{redirector.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "some-header")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UpstreamError) as info:
        [event async for event in stream_chat(spec(redirector, auth="authMode: entra"), HI)]
    assert info.value.code == "auth_failed" and "Entra" in info.value.message
    assert any(path.startswith("/msi/token") for _, path in redirector.hits)
    assert elsewhere.hits == [], "the identity request followed a redirect"
