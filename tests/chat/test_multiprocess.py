"""Several server processes on one PostgreSQL database and one Redis, as README.md deploys them.

Two real Daphne processes (A and B) share the database, the Redis channel layer, the Redis cache
and the SECRET_KEY; the clients are real websockets over TCP (aiohttp), signed in through the
login form. What must hold: any process serves any socket. A socket on B resumes and stops an
answer that A generates; a config version activated elsewhere reaches A without a restart; and
another user's socket on B gets nowhere with that answer.

Runs only on the PostgreSQL + Redis profile: on SQLite each process would have its own
in-memory channel layer, which is exactly the deployment README.md rules out.
"""

import asyncio
import json
import os
import uuid

import aiohttp
import pytest
from yarl import URL

from tests.chat.conftest import ChatSocket
from tests.conftest import TEST_PASSWORD
from tests.live import LiveServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    or not os.environ.get("REDIS_URL"),
    reason="several processes need the PostgreSQL + Redis profile (DATABASE_URL=postgres://..., REDIS_URL)",
)

# Generous: the CI machine is a loaded 2-core box. Waits end on events, these only bound them.
FRAME_TIMEOUT = 60
PICKUP_TIMEOUT = 30


@pytest.fixture(scope="module")
def servers(azure_simulator, tmp_path_factory):
    """Processes A and B on one database and one Redis, with users alice and bob."""
    config = tmp_path_factory.mktemp("multiprocess") / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {
        "CONFIG_PATH": str(config),
        "LAPIS_SIM_KEY": azure_simulator.api_key,
        "SECRET_KEY": "multiprocess-" + uuid.uuid4().hex,  # one per deployment (README.md)
    }
    a = LiveServer(tmp_path_factory.mktemp("process-a"), extra_env=env)
    b = None
    try:
        a.start()
        a.create_user("alice", TEST_PASSWORD)
        a.create_user("bob", TEST_PASSWORD)
        b = LiveServer(tmp_path_factory.mktemp("process-b"), extra_env=env, database_url=a.database_url)
        b.start(migrate=False)
        yield a, b
    finally:
        if b is not None:
            b.stop()  # first: A drops the shared database when it stops
        a.stop()


class WireSocket(ChatSocket):
    """A ChatSocket over a real TCP websocket (same frame helpers: until, done, text_of)."""

    def __init__(self, ws):
        self.ws = ws
        self.frames = []

    async def send(self, frame):
        await self.ws.send_str(json.dumps(frame))

    async def receive(self, timeout=FRAME_TIMEOUT):
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, f"socket closed or odd frame: {message!r}"
        frame = json.loads(message.data)
        self.frames.append(frame)
        return frame

    async def until(self, predicate, timeout=FRAME_TIMEOUT):
        return await super().until(predicate, timeout=timeout)

    async def done(self, message_id, timeout=FRAME_TIMEOUT):
        return await super().done(message_id, timeout=timeout)

    async def close(self):
        await self.ws.close()


class Browserless:
    """One signed-in user: an HTTP session (cookies) that opens sockets on any process."""

    def __init__(self, session):
        self.session = session

    @classmethod
    async def sign_in(cls, server, username):
        # unsafe=True: keep cookies for an IP host (127.0.0.1). Cookies ignore the port, so
        # the session works on every process, as behind a load balancer.
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with session.get(server.url + "/login/") as response:
            assert response.status == 200
        token = session.cookie_jar.filter_cookies(URL(server.url))["csrftoken"].value
        form = {"username": username, "password": TEST_PASSWORD, "csrfmiddlewaretoken": token}
        async with session.post(
            server.url + "/login/", data=form, headers={"Origin": server.url}, allow_redirects=False
        ) as response:
            assert response.status == 302, f"sign-in as {username} failed: {response.status}"
        return cls(session)

    async def socket(self, server):
        ws = await self.session.ws_connect(
            server.url.replace("http://", "ws://") + "/ws/chat/", origin=server.url
        )
        socket = WireSocket(ws)
        # The consumer handles frames in order, so a pong means connect() (joining the user's
        # group) is over: frames published after this reach the socket.
        await socket.send({"type": "ping"})
        await socket.until(lambda f: f["type"] == "pong")
        return socket

    async def get(self, server, path):
        async with self.session.get(server.url + path) as response:
            assert response.status == 200, f"GET {path} on {server.url}: {response.status}"
            return await response.text()

    async def close(self):
        await self.session.close()


@pytest.fixture
async def users(servers):
    a, _ = servers
    alice = await Browserless.sign_in(a, "alice")
    bob = await Browserless.sign_in(a, "bob")
    yield alice, bob
    await alice.close()
    await bob.close()


def stored_message(server, message_id):
    code = (
        "import json; from apps.chat.models import Message;"
        f"m = Message.objects.get(id={str(message_id)!r});"
        "print(json.dumps({'status': m.status, 'content': m.content, 'seq': m.seq}))"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


def request_with(simulator, nonce):
    """The simulator's log entry of the request whose prompt carries ``nonce``, or None."""
    for entry in simulator.requests():
        if nonce in json.dumps((entry.get("json") or {}).get("messages", [])):
            return entry
    return None


async def poll(check, *, timeout, what):
    """Call ``check`` (sync, run off the loop) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.2)


def live_deltas(socket, message_id, *, after_seq):
    return [
        f for f in socket.frames
        if f["type"] == "delta" and f["message_id"] == message_id and f["seq"] > after_seq
    ]


async def test_a_socket_on_b_resumes_and_stops_what_a_generates_and_another_user_cannot(
    servers, users, azure_simulator
):
    a, b = servers
    alice, bob = users
    on_a, on_b, bob_on_b = await alice.socket(a), await alice.socket(b), await bob.socket(b)
    nonce = "multiprocess-" + uuid.uuid4().hex[:8]
    await on_a.send({
        "type": "send", "conversation_id": None, "client_id": nonce, "model": "gpt-4o",
        "text": f"{nonce} [sim:words 600] [sim:delay chunk=15]",
    })
    answer_id = (await on_a.created_answer())["id"]
    # The user's other socket, on the other process, heard of the answer through Redis.
    await on_b.until(lambda f: f["type"] == "message.created" and f["message"]["id"] == answer_id)

    # Resume on B: the snapshot comes from A's running generation, then A's live deltas.
    await on_b.send({"type": "resume", "message_id": answer_id, "seq": 0})
    snapshot = await on_b.until(lambda f: f["type"] == "snapshot" and f["message_id"] == answer_id)
    assert snapshot["status"] == "streaming"
    await on_b.until(lambda f: len(live_deltas(on_b, answer_id, after_seq=snapshot["seq"])) >= 3)

    # Bob, on B too, can neither watch nor stop Alice's answer: the first frame about it is a refusal.
    for frame in (
        {"type": "resume", "message_id": answer_id, "seq": 0},
        {"type": "stop", "message_id": answer_id},
    ):
        await bob_on_b.send(frame)
        reply = await bob_on_b.until(
            lambda f: f["type"] == "error" or f.get("message_id") == answer_id
        )
        assert (reply["type"], reply.get("code")) == ("error", "not_found"), reply
    # ... and the answer goes on: more deltas reach Alice's socket on B after Bob's stop.
    seen = len(live_deltas(on_b, answer_id, after_seq=0))
    await on_b.until(lambda f: len(live_deltas(on_b, answer_id, after_seq=0)) > seen)

    # Stop from B: A's generation stops and both sockets hear how it ended.
    await on_b.send({"type": "stop", "message_id": answer_id})
    done_b = await on_b.done(answer_id)
    done_a = await on_a.done(answer_id)
    assert done_a["status"] == done_b["status"] == "stopped"
    assert done_a["seq"] == done_b["seq"]

    stored = await asyncio.to_thread(stored_message, a, answer_id)
    assert stored["status"] == "stopped"
    assert stored["content"], "the partial text is kept"
    assert stored["seq"] == done_a["seq"]
    # Both sockets assembled exactly the stored text (text_of fails on a gap in seq).
    assert on_b.text_of(answer_id) == stored["content"]
    assert on_a.text_of(answer_id) == stored["content"]

    # The stop reached Azure: A closed the upstream request mid-stream.
    entry = await poll(
        lambda: (e := request_with(azure_simulator, nonce)) and e["outcome"] is not None and e,
        timeout=PICKUP_TIMEOUT, what="the simulator to log the answer's request",
    )
    assert entry["outcome"] == "client_disconnected", entry

    # Bob's socket saw nothing of Alice's answer but the two refusals.
    assert [f for f in bob_on_b.frames if f.get("message_id") == answer_id and f["type"] != "error"] == []
    assert not any(
        f["type"] == "message.created" and f["message"]["id"] == answer_id for f in bob_on_b.frames
    )
    for socket in (on_a, on_b, bob_on_b):
        await socket.close()


async def test_a_config_version_activated_elsewhere_reaches_a_without_restart(
    servers, users, azure_simulator, tmp_path
):
    a, b = servers
    alice, _ = users
    assert 'data-key="late-model"' not in await alice.get(a, "/models/")
    chat_models = {
        "gpt-4o": {"deploymentName": "gpt-4o"},
        "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
        "late-model": {"deploymentName": "gpt-35-turbo", "vision": False},
    }
    path = tmp_path / "v2.yaml"
    path.write_text(
        azure_simulator.config_yaml(titleConvo=False, summarize=False, chat_models=chat_models)
    )
    # Activated by another process (a management command on the shared database, B's env).
    result = await asyncio.to_thread(b.manage, "load_config", str(path), "--activate")
    assert "activated" in result.stdout, result.stdout + result.stderr

    async def listed_on_a():
        return 'data-key="late-model"' in await alice.get(a, "/models/")

    loop = asyncio.get_running_loop()
    deadline = loop.time() + PICKUP_TIMEOUT
    while not await listed_on_a():
        assert loop.time() < deadline, "process A never listed the model of the new version"
        await asyncio.sleep(0.2)

    # A also answers with it: the model only the new version has, on its deployment.
    on_a = await alice.socket(a)
    nonce = "late-" + uuid.uuid4().hex[:8]
    await on_a.send({
        "type": "send", "conversation_id": None, "client_id": nonce, "model": "late-model",
        "text": f"{nonce} hello",
    })
    answer = await on_a.created_answer()
    done = await on_a.done(answer["id"])
    assert done["status"] == "complete", done
    assert on_a.text_of(answer["id"])
    entry = request_with(azure_simulator, nonce)
    assert entry is not None and entry["deployment"] == "gpt-35-turbo", entry
    await on_a.close()
