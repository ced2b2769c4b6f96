"""``/metrics``: refused without the token, and the figures of real chats over the websocket.

The chats run through the real ASGI app (Channels' communicator) against the simulator, and the
figures are read back through ``/metrics`` with prometheus-client's parser. The registry is the
process's own, so every check compares before and after.
"""

import os
import uuid

import pytest
from django.core import checks
from django.test import AsyncClient, Client

from apps.azure.errors import UpstreamError
from apps.observability import metrics
from apps.observability.checks import check_observability
from apps.observability.views import token_matches
from tests.chat.conftest import wait_for_generations
from tests.live import free_port
from tests.observability.conftest import TOKEN, samples, total, value


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ADDRESS = ""
    return settings


async def scrape():
    response = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


@pytest.mark.django_db
def test_metrics_are_not_in_the_url_space_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ADDRESS = "127.0.0.1:9100"  # a listener elsewhere does not open /metrics
    response = Client().get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert b"lapis_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN],
)
def test_metrics_refuse_a_missing_or_wrong_token(metrics_on, header):
    headers = {} if header is None else {"Authorization": header}
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"lapis_" not in response.content and TOKEN.encode() not in response.content


@pytest.mark.django_db
def test_metrics_with_the_token_even_before_the_first_account(metrics_on):
    # No user exists: every other page leads to /setup/, a scraper must not be sent there.
    response = Client().get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert b"lapis_answers_active" in response.content
    assert Client().post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_token_compare():
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"BEARER   {TOKEN} ", TOKEN)
    assert not token_matches(f"Bearer {TOKEN.upper()}", TOKEN)
    assert not token_matches("Bearer ", TOKEN)
    assert not token_matches(f"Token {TOKEN}", TOKEN)


@pytest.mark.django_db(transaction=True)
async def test_a_chat_over_the_websocket_shows_in_the_counters(metrics_on, chat_config, user_a, open_socket):
    labels = {"model": "gpt-4o", "group": "simulator", "deployment": "gpt-4o"}
    before = await scrape()
    socket = await open_socket(user_a[1])
    during = await scrape()
    assert value(during, "lapis_sockets_open") == value(before, "lapis_sockets_open") + 1

    # One answer that Azure throttles once (a short Retry-After, retried), then streams.
    await socket.send({"type": "send", "client_id": "m1", "model": "gpt-4o",
                       "text": "Hi [sim:429 retry_after=0.2 times=1] [sim:words 40] [sim:delay chunk=5]"})
    answer = await socket.created_answer()
    assert (await socket.done(answer["id"]))["status"] == "complete"
    # One that Azure refuses for longer than Lapis waits: an error, counted as a 429.
    await socket.send({"type": "send", "client_id": "m2", "model": "gpt-4o",
                       "text": "Again [sim:429 retry_after=40]"})
    failed = await socket.created_answer()
    assert (await socket.done(failed["id"]))["status"] == "error"
    await wait_for_generations()
    after = await scrape()

    def grew(name, by=1, **extra):
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra) == by

    assert grew("lapis_answers_started_total", by=2)
    assert grew("lapis_answers_finished_total", status="complete")
    assert grew("lapis_answers_finished_total", status="error")
    assert grew("lapis_answer_duration_seconds_count", by=2)
    assert grew("lapis_answer_first_text_seconds_count")  # the refused one never had text
    assert grew("lapis_upstream_errors_total", by=2, code="429")  # the retried one and the refused
    assert grew("lapis_upstream_retry_wait_seconds_count", status="429")
    waited = value(after, "lapis_upstream_retry_wait_seconds_sum", **labels, status="429") - value(
        before, "lapis_upstream_retry_wait_seconds_sum", **labels, status="429")
    assert 0.15 <= waited <= 0.25
    assert value(after, "lapis_answers_active") == value(before, "lapis_answers_active")
    assert total(after, "lapis_checkpoint_write_seconds_count", kind="final") >= total(
        before, "lapis_checkpoint_write_seconds_count", kind="final") + 2
    from apps.azure.models import ConfigVersion

    active = await ConfigVersion.objects.filter(is_active=True).values_list("pk", flat=True).afirst()
    assert value(after, "lapis_config_version") == active

    await socket.close()
    closed = await scrape()
    assert value(closed, "lapis_sockets_open") == value(before, "lapis_sockets_open")


@pytest.mark.django_db(transaction=True)
async def test_nothing_is_counted_while_metrics_are_off(settings, chat_config, user_a, open_socket):
    settings.METRICS_TOKEN = settings.METRICS_ADDRESS = ""
    key = ("lapis_answers_started_total", "gpt-4o-mini")

    def started():
        return metrics.ANSWERS_STARTED.labels(key[1], "simulator", key[1])._value.get()

    before = started()
    socket = await open_socket(user_a[1])
    await socket.send({"type": "send", "client_id": "off", "model": "gpt-4o-mini", "text": "Hello"})
    answer = await socket.created_answer()
    assert (await socket.done(answer["id"]))["status"] == "complete"
    assert started() == before


@pytest.mark.django_db
async def test_failover_counter_through_its_function(metrics_on):
    before = await scrape()
    metrics.record_failover(model="gpt-4o", from_group="eu-west", to_group="us-east")
    metrics.record_failover(model="gpt-4o", from_group="eu-west", to_group="us-east")
    metrics.record_failover(model="gpt-4o", from_group="us-east", to_group="eu-west")
    after = await scrape()
    name = "lapis_upstream_failovers_total"
    west_east = {"model": "gpt-4o", "from_group": "eu-west", "to_group": "us-east"}
    east_west = {"model": "gpt-4o", "from_group": "us-east", "to_group": "eu-west"}
    assert value(after, name, **west_east) - value(before, name, **west_east) == 2
    assert value(after, name, **east_west) - value(before, name, **east_west) == 1
    metrics_on.METRICS_TOKEN = ""
    metrics.record_failover(model="gpt-4o", from_group="eu-west", to_group="us-east")
    metrics_on.METRICS_TOKEN = TOKEN
    assert value(await scrape(), name, **west_east) == value(after, name, **west_east)


async def test_channel_layer_send_failures_are_counted(settings):
    from channels.exceptions import ChannelFull

    from project.layers import InMemoryChannelLayer

    settings.METRICS_TOKEN = TOKEN
    full = metrics.CHANNEL_SEND_FAILURES.labels("memory", "full")
    before = full._value.get()
    layer = InMemoryChannelLayer(capacity=1)
    await layer.group_add("answer.1", "specific.a")
    await layer.group_send("answer.1", {"type": "chat.frame", "n": 1})
    await layer.group_send("answer.1", {"type": "chat.frame", "n": 2})  # the member is full
    with pytest.raises(ChannelFull):
        await layer.send("specific.a", {"type": "chat.frame", "n": 3})
    assert full._value.get() - before == 2
    assert (await layer.receive("specific.a"))["n"] == 1


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UpstreamError("rate_limited", "busy", status=429), "429"),
        (UpstreamError("upstream_error", "x", status=503), "5xx"),
        (UpstreamError("upstream_error", "x", status=500), "5xx"),
        (UpstreamError("content_filter_prompt", "x", status=400), "filter"),
        (UpstreamError("upstream_stalled", "x"), "timeout"),
        (UpstreamError("upstream_unreachable", "x", admin_detail="g/d: connect timeout (10 s)"), "timeout"),
        (UpstreamError("upstream_unreachable", "x", admin_detail="g/d: connection failed (OSError)"), "upstream_unreachable"),
        (UpstreamError("auth_failed", "x", status=401), "auth_failed"),
    ],
)
def test_upstream_error_kinds(error, code):
    assert metrics.error_code(error) == code


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("METRICS_ADDRESS", "9100", "lapis.E701"),
        ("METRICS_ADDRESS", "0.0.0.0:http", "lapis.E701"),
        ("METRICS_ADDRESS", "0.0.0.0:70000", "lapis.E701"),
        ("METRICS_TOKEN", "short", "lapis.E702"),
        ("METRICS_TOKEN", f" {TOKEN}", "lapis.E702"),
    ],
)
def test_settings_that_cannot_work_are_system_checks(settings, name, value, problem):
    settings.METRICS_TOKEN = settings.METRICS_ADDRESS = ""
    setattr(settings, name, value)
    found = check_observability()
    assert [p.id for p in found] == [problem] and all(isinstance(p, checks.Error) for p in found)


def test_good_settings_pass_the_checks(settings):
    settings.METRICS_TOKEN, settings.METRICS_ADDRESS = TOKEN, "[::]:9100"
    assert check_observability() == []
    assert metrics.parse_address("[::]:9100") == ("::", 9100)
    assert metrics.parse_address(":9100") == ("0.0.0.0", 9100)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the PostgreSQL + Redis profile's layer")
async def test_redis_layer_send_failures_are_counted(settings):
    """Lapis's Redis layer on the real Redis: a member over capacity in a group send, a full
    channel on send, and Redis away all count."""
    from channels.exceptions import ChannelFull
    from channels.layers import ChannelLayerManager

    settings.METRICS_TOKEN = TOKEN
    config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "capacity": 1,
              "prefix": "lapis-metrics-test-" + uuid.uuid4().hex[:8]}
    layer = ChannelLayerManager()._make_backend("default", config)
    full = metrics.CHANNEL_SEND_FAILURES.labels("redis", "full")
    error = metrics.CHANNEL_SEND_FAILURES.labels("redis", "error")
    before_full, before_error = full._value.get(), error._value.get()
    try:
        await layer.group_add("answer.1", "member.channel")  # capacity 1 (not a process key)
        await layer.group_send("answer.1", {"type": "chat.frame", "n": 1})
        await layer.group_send("answer.1", {"type": "chat.frame", "n": 2})  # over capacity
        await layer.send("plain.channel", {"type": "x"})
        with pytest.raises(ChannelFull):
            await layer.send("plain.channel", {"type": "x"})
        assert full._value.get() - before_full == 2
    finally:
        await layer.flush()
    away = ChannelLayerManager()._make_backend(
        "default", {**config, "hosts": [{"address": f"redis://127.0.0.1:{free_port()}/2", "timeout": 1}]}
    )
    with pytest.raises(Exception):  # noqa: B017 - whichever error redis-py raises for a refused connection
        await away.send("plain.channel", {"type": "x"})
    assert error._value.get() - before_error == 1
