"""Rate limits shared by two Daphne processes on one PostgreSQL database and one Redis.

The limits live in the Redis cache, so a user cannot double them by spreading sockets over
processes: answers per minute and open sockets are counted once for the whole deployment.
"""

import asyncio
import json
import os
import uuid

import aiohttp
import pytest

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD, forget_rate_limit_counters
from tests.governance.test_rate_limits import away_from_a_minute_edge, finished, replies
from tests.live import LiveServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    or not os.environ.get("REDIS_URL"),
    reason="several processes need the PostgreSQL + Redis profile (DATABASE_URL=postgres://..., REDIS_URL)",
)


@pytest.fixture(scope="module")
def servers(azure_simulator, tmp_path_factory):
    config = tmp_path_factory.mktemp("limits") / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {
        "CONFIG_PATH": str(config),
        "LAPIS_SIM_KEY": azure_simulator.api_key,
        "SECRET_KEY": "limits-" + uuid.uuid4().hex,
        "CHAT_ANSWERS_PER_MINUTE": "4",
        "CHAT_ANSWERS_AT_ONCE": "0",
        "CHAT_SOCKETS_PER_USER": "3",
    }
    forget_rate_limit_counters()  # a fresh database's first user has id 1 again
    a = LiveServer(tmp_path_factory.mktemp("limits-a"), extra_env=env)
    b = None
    try:
        a.start()
        a.create_user("carol", TEST_PASSWORD)
        b = LiveServer(tmp_path_factory.mktemp("limits-b"), extra_env=env, database_url=a.database_url)
        b.start(migrate=False)
        yield a, b
    finally:
        if b is not None:
            b.stop()
        a.stop()


async def test_two_processes_share_the_answer_and_socket_limits(servers, azure_simulator):
    a, b = servers
    azure_simulator.reset()
    carol = await Browserless.sign_in(a, "carol")
    try:
        on_a, on_b = await carol.socket(a), await carol.socket(b)
        nonce = uuid.uuid4().hex[:8]
        await away_from_a_minute_edge()
        counted = []
        for socket, server in ((on_a, "a"), (on_b, "b")):  # A's three first, then B's
            for n in range(3):
                await socket.send({
                    "type": "send", "conversation_id": None, "client_id": f"{nonce}-{server}-{n}",
                    "model": "gpt-4o", "text": f"{nonce} {server} {n}",
                })
            counted.append(await replies(socket, 3, prefix=f"{nonce}-{server}-"))
        (started_a, refused_a), (started_b, refused_b) = counted
        # Four in the minute for the whole deployment, not four per process.
        assert (len(started_a), len(started_b)) == (3, 1), (refused_a, refused_b)
        assert [f["code"] for f in refused_b] == ["rate_limited"] * 2
        for answer_id in started_a:
            await finished(on_a, answer_id)
        await finished(on_b, started_b[0])
        ours = [e for e in azure_simulator.requests() if nonce in json.dumps(e.get("json") or {})]
        assert len(ours) == 4

        # Sockets: two open (one per process), a third on A is fine, a fourth on B is refused.
        third = await carol.socket(a)
        fourth = await carol.session.ws_connect(
            b.url.replace("http://", "ws://") + "/ws/chat/", origin=b.url
        )
        frame = json.loads((await asyncio.wait_for(fourth.receive(), 30)).data)
        assert (frame["code"], frame["limit"]) == ("rate_limited", "sockets")
        closing = await asyncio.wait_for(fourth.receive(), 30)
        assert closing.type == aiohttp.WSMsgType.CLOSE and fourth.close_code == 4429, closing
        await third.close()
        for socket in (on_a, on_b):
            await socket.close()
    finally:
        await carol.close()
