"""Pools and failover through the real websocket chat: the simulator throttles one member's
deployment (``[sim:429 ... deployment=gpt-4o-eu]``) and the answer comes from the other."""

import asyncio
import json
import uuid

import pytest
from django.core.cache import cache
from django.test import Client

from apps.azure import health
from apps.azure.signals import upstream_failover
from apps.chat.models import Message
from tests.chat.conftest import make_user_and_client
from tests.simulator_fixture import CHAT_VERSION, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def pool_yaml(simulator, *, pool_access=None, eu_endpoint=None, **overrides):
    """The simulator's config plus two groups ("eu", "us") serving gpt-4o as one pool."""
    region = lambda name, label: {  # noqa: E731
        "group": name, "apiKey": "${LAPIS_SIM_KEY}", "version": CHAT_VERSION,
        "endpoint": (eu_endpoint if name == "eu" and eu_endpoint else simulator.url),
        "models": {f"gpt-4o-{name}": {"deploymentName": f"gpt-4o-{name}", "label": label}},
    }
    return simulator.config_yaml(
        titleConvo=False, summarize=False,
        extra_groups=[region("eu", "gpt-4o (EU)"), region("us", "gpt-4o (US)")],
        pools={"gpt-4o-pool": {"label": "GPT-4o", "members": ["gpt-4o-eu", "gpt-4o-us"],
                               **({"access": pool_access} if pool_access else {})}},
        **overrides,
    )


def forget_health():
    """No health from earlier tests: this process's view and the shared entries."""
    health.forget()
    cache.delete_many([health.cache_key(g, f"gpt-4o-{g}") for g in ("eu", "us")])


@pytest.fixture(autouse=True)
def _fresh_health():
    forget_health()
    yield
    forget_health()


@pytest.fixture
def pool_config(azure_simulator, activate_config, settings):
    settings.CHAT_IDLE_TIMEOUT = 1.5
    azure_simulator.reset()
    return activate_config(pool_yaml(azure_simulator))


@pytest.fixture
def failovers():
    seen = []

    def receiver(sender, **kwargs):
        seen.append({k: kwargs[k] for k in ("model", "from_group", "to_group", "reason")})

    upstream_failover.connect(receiver)
    yield seen
    upstream_failover.disconnect(receiver)


async def ask(open_socket, client, text, model="gpt-4o-pool"):
    socket = await open_socket(client)
    await socket.send({"type": "send", "client_id": uuid.uuid4().hex, "text": text, "model": model})
    answer = await socket.created_answer()
    done = await socket.done(answer["id"], timeout=40)
    stored = await Message.objects.aget(id=answer["id"])
    return done, stored, socket


def served_by(simulator):
    return [(e["deployment"], e["status"]) for e in simulator.requests() if e["deployment"]]


async def test_throttled_member_fails_over_to_the_next_with_no_visible_error(
    pool_config, user_a, open_socket, azure_simulator, failovers, settings
):
    from tests.observability.conftest import TOKEN, samples, value

    settings.METRICS_TOKEN, settings.METRICS_ADDRESS = TOKEN, ""
    moved = {"model": "gpt-4o-pool", "from_group": "eu", "to_group": "us"}

    async def counted():
        from django.test import AsyncClient

        page = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        return value(samples(page.content.decode()), "lapis_upstream_failovers_total", **moved)

    before = await counted()
    done, stored, socket = await ask(open_socket, user_a[1], "Hello [sim:429 retry_after=30 deployment=gpt-4o-eu]")
    assert done["status"] == "complete", done
    assert "error" not in done or not done["error"]
    assert stored.status == Message.Status.COMPLETE and stored.content
    assert stored.model_key == "gpt-4o-pool"
    assert socket.text_of(str(stored.id)) == stored.content
    assert not [f for f in socket.frames if f["type"] in ("retrying", "error")], "the user sees no error or wait"
    # A then B, once each: the throttled member was not waited for.
    assert served_by(azure_simulator) == [("gpt-4o-eu", 429), ("gpt-4o-us", 200)]
    assert failovers == [{"model": "gpt-4o-pool", "from_group": "eu", "to_group": "us", "reason": "rate_limited"}]
    assert await counted() - before == 1, "the metrics count the failover"
    assert health.state(("eu", "gpt-4o-eu")) == health.RATE_LIMITED
    assert 25 < health.cooling(("eu", "gpt-4o-eu")) <= 30


async def test_cool_down_sends_the_next_answer_straight_to_the_other_member_until_it_ends(
    pool_config, user_a, open_socket, azure_simulator, failovers
):
    await ask(open_socket, user_a[1], "One [sim:429 retry_after=2 deployment=gpt-4o-eu]")
    azure_simulator.reset()
    done, stored, _ = await ask(open_socket, user_a[1], "Two")
    assert done["status"] == "complete"
    assert served_by(azure_simulator) == [("gpt-4o-us", 200)], "EU rests for its Retry-After"
    assert len(failovers) == 1
    await asyncio.sleep(2.2)
    azure_simulator.reset()
    done, _, _ = await ask(open_socket, user_a[1], "Three")
    assert done["status"] == "complete"
    assert served_by(azure_simulator) == [("gpt-4o-eu", 200)], "after the cool-down EU is first again"
    assert health.state(("eu", "gpt-4o-eu")) == health.OK


async def test_server_error_before_the_first_chunk_fails_over(
    pool_config, user_a, open_socket, azure_simulator, failovers
):
    done, stored, _ = await ask(open_socket, user_a[1], "Hi [sim:503 deployment=gpt-4o-eu]")
    assert done["status"] == "complete", done
    assert served_by(azure_simulator) == [("gpt-4o-eu", 503), ("gpt-4o-us", 200)]
    assert failovers[0]["reason"] == "server_error"


@pytest.mark.parametrize("marker", ["[sim:drop after=3]", "[sim:error_event after=3]"])
async def test_no_retry_once_text_has_streamed(
    pool_config, user_a, open_socket, azure_simulator, failovers, marker
):
    done, stored, socket = await ask(open_socket, user_a[1], f"Tell me {marker} [sim:words 60]")
    assert done["status"] in ("interrupted", "error"), done
    assert stored.content, "the text written before the failure is kept"
    assert socket.text_of(str(stored.id)) == stored.content
    assert [d for d, _ in served_by(azure_simulator)] == ["gpt-4o-eu"], "the other member is never asked"
    assert failovers == []


async def test_every_member_cooling_down_is_reported_at_once_without_a_call(
    pool_config, user_a, open_socket, azure_simulator, failovers
):
    done, stored, _ = await ask(open_socket, user_a[1], "Busy [sim:429 retry_after=30]")
    assert done["status"] == "error" and done["error"]["code"] == "rate_limited"
    assert [d for d, _ in served_by(azure_simulator)] == ["gpt-4o-eu", "gpt-4o-us"]
    azure_simulator.reset()
    done, stored, _ = await ask(open_socket, user_a[1], "Again")
    assert done["status"] == "error" and done["error"]["code"] == "rate_limited"
    assert "Every deployment of GPT-4o is busy" in stored.error_message
    assert 25 < done["error"]["retry_after"] <= 30
    assert served_by(azure_simulator) == [], "a member resting for its Retry-After is not called"


async def test_health_endpoint_names_the_throttled_member_for_users_who_may_use_the_pool(
    pool_config, user_a, open_socket, azure_simulator, failovers
):
    await ask(open_socket, user_a[1], "Hello [sim:429 retry_after=30 deployment=gpt-4o-eu]")
    response = await asyncio.to_thread(lambda: user_a[1].get("/models/health/"))
    assert response.status_code == 200
    notices = json.loads(response.content)["notices"]
    assert notices == {
        "gpt-4o-pool": "gpt-4o (EU) is rate-limited; answers come from gpt-4o (US).",
    }
    anonymous = await asyncio.to_thread(lambda: Client().get("/models/health/"))
    assert anonymous.status_code in (302, 401, 403)


async def test_admin_health_page_is_staff_only_and_shows_the_rolling_view(
    pool_config, user_a, open_socket, azure_simulator
):
    await ask(open_socket, user_a[1], "Hello [sim:429 retry_after=30 deployment=gpt-4o-eu]")

    def pages():
        _, staff = make_user_and_client("root", staff=True)
        return user_a[1].get("/admin/azure/configversion/health/"), staff.get("/admin/azure/configversion/health/")

    refused, shown = await asyncio.to_thread(pages)
    assert refused.status_code == 403
    assert shown.status_code == 200
    html = shown.content.decode()
    assert 'data-group="eu" data-deployment="gpt-4o-eu" data-state="rate_limited"' in html
    assert 'data-group="us" data-deployment="gpt-4o-us" data-state="ok"' in html
    assert "sim-key" not in html


async def test_a_pool_with_an_access_list_is_refused_to_others_and_never_reaches_a_member(
    azure_simulator, activate_config, user_a, open_socket
):
    azure_simulator.reset()
    registry = await asyncio.to_thread(activate_config, pool_yaml(azure_simulator, pool_access=["premium"]))
    assert registry.get("gpt-4o-pool").access == ("premium",)
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": uuid.uuid4().hex, "text": "Hi", "model": "gpt-4o-pool"})
    frame = await socket.until(lambda f: f["type"] == "error")
    assert frame["code"] == "model_not_allowed"
    assert served_by(azure_simulator) == []
    page = await asyncio.to_thread(lambda: user_a[1].get("/models/"))
    assert b'data-key="gpt-4o-pool"' not in page.content


async def test_a_pool_of_responses_api_members_fails_over_the_same_way(
    azure_simulator, activate_config, user_a, open_socket, failovers
):
    azure_simulator.reset()
    text = pool_yaml(azure_simulator).replace("label: gpt-4o (EU)", "label: gpt-4o (EU)\n          useResponsesApi: true")
    text = text.replace("label: gpt-4o (US)", "label: gpt-4o (US)\n          useResponsesApi: true")
    registry = await asyncio.to_thread(activate_config, text)
    assert registry.get("gpt-4o-pool").responses_api
    done, stored, _ = await ask(open_socket, user_a[1], "Hi [sim:429 retry_after=30 deployment=gpt-4o-eu]")
    assert done["status"] == "complete", done
    assert [(e["path"], e["deployment"], e["status"]) for e in azure_simulator.requests()] == [
        ("/openai/v1/responses", "gpt-4o-eu", 429), ("/openai/v1/responses", "gpt-4o-us", 200),
    ]
    assert failovers[0]["reason"] == "rate_limited"


async def test_an_unreachable_member_is_passed_over_at_once(
    azure_simulator, activate_config, user_a, open_socket, failovers
):
    azure_simulator.reset()
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    text = pool_yaml(azure_simulator, eu_endpoint=closed)
    await asyncio.to_thread(activate_config, text)
    started = asyncio.get_running_loop().time()
    done, stored, socket = await ask(open_socket, user_a[1], "Hello")
    assert done["status"] == "complete", done
    assert served_by(azure_simulator) == [("gpt-4o-us", 200)]
    assert failovers == [{"model": "gpt-4o-pool", "from_group": "eu", "to_group": "us", "reason": "unreachable"}]
    assert not [f for f in socket.frames if f["type"] in ("retrying", "error")]
    assert health.state(("eu", "gpt-4o-eu")) == health.FAILING
    assert asyncio.get_running_loop().time() - started < 10
