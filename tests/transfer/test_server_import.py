"""The import address through the real server (project/server.py): its own body cap,
IMPORT_MAX_BYTES, refused before the body is read; a file within it is imported."""

import json
import socket
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

LIMIT = 300_000
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("import-bounds"), extra_env={"IMPORT_MAX_BYTES": str(LIMIT)})
    live.start()
    live.create_user("importer", TEST_PASSWORD)
    yield live
    live.stop()


def test_an_import_over_its_limit_is_refused_before_it_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(
            b"POST /transfer/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer, answer[:200]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error == "The request body is 4.8 MB; the limit for this address is 357 KB."


async def test_an_import_over_the_general_limit_but_within_its_own_is_taken(server):
    signed_in = await Browserless.sign_in(server, "importer")
    session = signed_in.session
    try:
        token = session.cookie_jar.filter_cookies(URL(server.url))["csrftoken"].value
        document = json.loads((FIXTURES / "chatgpt_conversations.json").read_text())
        document[1]["mapping"]["a-2"]["message"]["content"]["parts"] = ["rain " * 30_000]  # 150 KB
        data = json.dumps(document).encode()
        assert 64 * 1024 < len(data) < LIMIT
        form = aiohttp.FormData()
        form.add_field("file", data, filename="conversations.json", content_type="application/json")
        async with session.post(
            server.url + "/transfer/", data=form,
            headers={"X-CSRFToken": token, "Origin": server.url, "Accept": "application/json"},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        assert [item["title"] for item in body["imported"]] == ["Tide tables for Bergen", "Packing list"]
    finally:
        await session.close()
