"""Database faults while an answer streams, on a real Daphne server (issue 12).

SQLite: a second connection holds the write lock (BEGIN IMMEDIATE) for longer than the busy
timeout. PostgreSQL: a TCP proxy between Lapis and the server cuts every connection. Either way
the live stream goes on, and the answer ends saved or with an honest ``done`` ("not saved"),
after which the row is repaired when the database is back: never a row stuck ``streaming``.
"""

import asyncio
import json
import os
import sqlite3
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.chat.test_multiprocess import Browserless, poll, stored_message
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer
from tests.tcp_proxy import TcpProxy

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
TIMEOUT = 60
# Short enough that a fault outlasts it in the test; the defaults are seconds longer.
FAULT_ENV = {"SQLITE_BUSY_TIMEOUT": "0.5", "CHAT_SAVE_PATIENCE": "2"}


def healthz(server):
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_server(tmp_path_factory, azure_simulator, *, proxied=False):
    data = tmp_path_factory.mktemp("db-faults")
    config = data / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {**FAULT_ENV, "CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key}
    server = LiveServer(data, extra_env=env)
    proxy = None
    if proxied:  # Lapis reaches its PostgreSQL database only through the proxy
        parts = urlsplit(server.database_url)
        proxy = TcpProxy(parts.hostname, parts.port or 5432)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{proxy.port}"
        server.env["DATABASE_URL"] = urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
        )
    server.start()
    server.create_user("dora", TEST_PASSWORD)
    return server, proxy


class SqliteWriteLock:
    """Another writer: holds the SQLite write lock of ``server``'s database until released."""

    def __init__(self, server):
        self.conn = sqlite3.connect(
            server.data_dir / "lapis.sqlite3", isolation_level=None, timeout=30,
            check_same_thread=False,
        )

    def hold(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self):
        if self.conn is not None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


async def ask(socket, text):
    await socket.send({
        "type": "send", "conversation_id": None, "client_id": uuid.uuid4().hex, "model": "gpt-4o",
        "text": text,
    })
    return (await socket.created_answer())["id"]


def deltas(socket, answer_id):
    return sum(1 for f in socket.frames if f["type"] == "delta" and f["message_id"] == answer_id)


async def fault_outlasting_patience(server, *, break_db, mend_db):
    """The database breaks after the first delta and stays away past the save patience."""
    user = await Browserless.sign_in(server, "dora")
    try:
        socket = await user.socket(server)
        answer_id = await ask(socket, "Tell me [sim:words 40] [sim:delay chunk=60]")
        await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answer_id)
        await asyncio.to_thread(break_db)
        seen = deltas(socket, answer_id)
        done = await socket.done(answer_id, timeout=TIMEOUT)
        # The stream did not freeze while checkpoints failed.
        assert deltas(socket, answer_id) > seen + 3
        assert done["error"]["code"] == "not_saved", done
        assert "not saved" in done["error"]["message"]
        streamed = socket.text_of(answer_id)
        assert len(streamed.split()) >= 40, "the whole text is on the page to copy"
        status, body = await asyncio.to_thread(healthz, server)
        assert status == 503 and "not saved" in body["answers"], body
        await asyncio.to_thread(mend_db)
        stored = await poll(
            lambda: (m := stored_message(server, answer_id))["status"] != "streaming" and m,
            timeout=TIMEOUT, what="the answer to be repaired",
        )
        assert stored["status"] == "complete"
        assert stored["content"] == streamed
        assert stored["seq"] == done["seq"]
        await poll(lambda: healthz(server)[0] == 200, timeout=TIMEOUT, what="a healthy /healthz")
    finally:
        await user.close()


async def short_fault(server, *, break_db, mend_db):
    """The database is away for a moment mid-answer: the answer is saved as usual."""
    user = await Browserless.sign_in(server, "dora")
    try:
        socket = await user.socket(server)
        answer_id = await ask(socket, "Tell me [sim:words 60] [sim:delay chunk=60]")
        await socket.until(lambda f: f["type"] == "delta" and f["message_id"] == answer_id)
        await asyncio.to_thread(break_db)
        # Mended while the answer still streams: failed checkpoints are retried, the final
        # write finds the database back.
        goal = deltas(socket, answer_id) + 10
        while deltas(socket, answer_id) < goal:
            frame = await socket.receive()
            assert frame["type"] != "done", f"the answer ended before the fault was mended: {frame}"
        await asyncio.to_thread(mend_db)
        done = await socket.done(answer_id, timeout=TIMEOUT)
        assert done["status"] == "complete" and not done.get("error"), done
        stored = await asyncio.to_thread(stored_message, server, answer_id)
        assert stored == {"status": "complete", "content": socket.text_of(answer_id), "seq": done["seq"]}
    finally:
        await user.close()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory, azure_simulator):
    if ON_POSTGRES:
        pytest.skip("the SQLite write lock needs the default profile")
    server, _ = start_server(tmp_path_factory, azure_simulator)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory, azure_simulator):
    if not ON_POSTGRES:
        pytest.skip("the connection cut needs the PostgreSQL profile")
    server, proxy = start_server(tmp_path_factory, azure_simulator, proxied=True)
    yield server, proxy
    proxy.restore()
    server.stop()
    proxy.close()


@pytest.mark.parametrize("scenario", [short_fault, fault_outlasting_patience])
async def test_sqlite_write_lock_held_by_another_writer(sqlite_server, scenario):
    lock = SqliteWriteLock(sqlite_server)
    try:
        await scenario(sqlite_server, break_db=lock.hold, mend_db=lock.release)
    finally:
        lock.release()


@pytest.mark.parametrize("scenario", [short_fault, fault_outlasting_patience])
async def test_postgresql_connection_cut(proxied_server, scenario):
    server, proxy = proxied_server
    try:
        await scenario(server, break_db=proxy.cut, mend_db=proxy.restore)
    finally:
        proxy.restore()
